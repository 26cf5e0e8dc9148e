"""The dnsupdater's CoreDNS ConfigMaps loaded by a real CoreDNS (`peers.COREDNS_VERSION`, stock
plugins), written by the product's own adapters into the real kube-apiserver.

- Tailnet view: the reconciler (`reconciling.Reconciler` with the CoreDNS resolver backend)
  turns a tailnet-exposed Gateway and its routes into tailwire's resolver ConfigMap (a
  Corefile with `hosts` + `reload` per zone, one hosts file per zone). CoreDNS serves that
  ConfigMap as a pod would (`coredns.project`, the kubelet's volume layout) and answers the
  routes' hostnames with the Gateway's Tailscale addresses. When the records change (a new
  address, a new route, a deleted one) the `hosts` plugin's `reload 1s` picks the new file
  up, and a name it no longer holds gets NXDOMAIN with the zone's SOA (this test found the
  resolver answering SERVFAIL there); when the Corefile changes (a zone added) the `reload`
  plugin loads it, in the same process.
- In-cluster: the rewrite block merged into a user's CoreDNS Corefile sends `*.zone` to the
  gateway-internal Service. Its `kubernetes cluster.local` needs no extra upstream: the
  plugin answers the rewritten name from the real kube-apiserver, where the test applied the
  Service exactly as the ingress renderer makes it for the homelab stack, so the answer is the
  ClusterIP the real server allocated, under the name that was asked (`answer auto`). A zone
  added later is picked up by the user's `reload`, which the block relies on (it has none of
  its own: the plugin is global to the Corefile).

Only what running outside a pod needs is changed in the generated text (`coredns.localize`:
the port, `bind 127.0.0.1`, the kubeconfig, a loopback-only resolv.conf, `reload`'s interval).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Sequence

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import pytest
from kubernetes_asyncio import client

from tailwire.services.dnsupdater import config, reconciling, views
from tailwire.services.dnsupdater.adapters import coredns as coredns_backends
from tailwire.services.dnsupdater.adapters import kube as dns_kube
from tailwire.services.dnsupdater.domain import corefiles
from tailwire.shared.events import dns as dns_events
from tailwire.testing import coredns, kubeapiserver
from tests.dnsupdater import snapshots
from tests.realpeers import ingress

pytestmark = pytest.mark.real_peers

ZONE = "sudhanva.me"
NEW_ZONE = "example.test"
GATEWAY_V4, GATEWAY_V6 = "100.64.0.10", "fd7a:115c:a1e0::a"
MOVED_V4, MOVED_V6 = "100.64.0.11", "fd7a:115c:a1e0::b"

# kube-system/coredns as kubeadm ships it, less the plugins that listen on fixed ports of
# their own (health :8080, ready :8181, prometheus :9153): tailwire's block does not touch
# them, and two test runs on one machine would collide on those ports.
USER_COREFILE = """\
.:53 {
    errors
    kubernetes cluster.local in-addr.arpa ip6.arpa {
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
       ttl 30
    }
    forward . /etc/resolv.conf {
       max_concurrent 1000
    }
    cache 30
    loop
    reload
    loadbalance
}
"""


@pytest.fixture
def workspace(kube_apiserver: kubeapiserver.KubeAPIServer) -> Iterator[coredns.Workspace]:
    space = coredns.Workspace(kubeconfig=kube_apiserver.kubeconfig_path)
    try:
        yield space
    finally:
        space.close()


def _configmap(server: kubeapiserver.KubeAPIServer, namespace: str, name: str) -> dict[str, str]:
    found = server.get(f"/api/v1/namespaces/{namespace}/configmaps/{name}")
    assert found is not None, f"{namespace}/{name}"
    return dict(found["data"])


def _volume(workspace: coredns.Workspace, data: dict[str, str]) -> dict[str, str]:
    """The ConfigMap's data as the pod sees it, its Corefile localized."""
    return {**data, corefiles.COREFILE_KEY: workspace.corefile(data[corefiles.COREFILE_KEY])}


def _answer(server: coredns.CoreDNS, name: str, rdtype: str) -> dns.message.Message:
    return server.query(name, rdtype)


def _addresses(server: coredns.CoreDNS, name: str, rdtype: str = "A") -> set[str]:
    answer = _answer(server, name, rdtype)
    if answer.rcode() != dns.rcode.NOERROR:
        return set()
    return {
        item.to_text()
        for rrset in answer.answer
        if rrset.rdtype == dns.rdatatype.from_text(rdtype)
        for item in rrset
    }


async def _until(check: Callable[[], bool], *, within: float, what: str) -> float:
    """Poll `check` until true; the seconds it took."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    while not check():
        if loop.time() - started > within:
            raise AssertionError(f"not within {within} s: {what}")
        await asyncio.sleep(0.2)
    return loop.time() - started


class _NoTicks:
    async def wait(self) -> None:
        await asyncio.Event().wait()


async def _no_publish(_: dns_events.DnsChanged) -> None:
    return None


def _reconciler(
    view: views.ClusterView,
    *,
    writer: dns_kube.KubeWriter,
    namespace: str,
    zones: Sequence[tuple[str, int]],
    workspace: coredns.Workspace,
) -> reconciling.Reconciler:
    """The dnsupdater's reconciler with its CoreDNS resolver backend, as `app` wires it for
    these zones (backend `coredns`), the ConfigMap mounted at the workspace's volume."""
    resolver = coredns_backends.ResolverBackend(
        writer=writer,
        namespace=namespace,
        configmap="tailwire-dns",
        zones=zones,
        mount_path=str(workspace.volume),
    )
    targets = [
        reconciling.ZoneTarget(
            zone=config.ZoneConfig(zone=zone, ttl=ttl, backends=(config.Backend.COREDNS,)),
            backend=resolver,
        )
        for zone, ttl in zones
    ]
    return reconciling.Reconciler(
        view=view, targets=targets, publish=_no_publish, ticker=_NoTicks(), ensurers=[resolver]
    )


async def test_the_tailnet_view_answers_the_gateways_tailscale_address_and_follows_changes(
    kube_apiserver: kubeapiserver.KubeAPIServer, workspace: coredns.Workspace
) -> None:
    namespace = "coredns-tailnet-view"
    kube_apiserver.create_namespace(namespace)
    api_client: client.ApiClient = await kube_apiserver.api_client()
    writer = dns_kube.KubeWriter(api_client=api_client)
    view = views.ClusterView()
    for snapshot in (
        snapshots.gateway(),
        snapshots.tailscale_service(ips=(GATEWAY_V4, GATEWAY_V6)),
        snapshots.route("docs", hostnames=(f"docs.{ZONE}",)),
        snapshots.route("vault", hostnames=(f"vault.{ZONE}",)),
    ):
        view.put(snapshot)
    try:
        reconciler = _reconciler(
            view, writer=writer, namespace=namespace, zones=[(ZONE, 60)], workspace=workspace
        )
        await reconciler.reconcile()
        data = _configmap(kube_apiserver, namespace, "tailwire-dns")
        with coredns.running(workspace, _volume(workspace, data), probe=f"docs.{ZONE}") as server:
            # (a) the route's hostname answers the Gateway's Tailscale addresses, with the TTL
            # of the zone, authoritatively.
            assert _addresses(server, f"docs.{ZONE}", "A") == {GATEWAY_V4}
            assert _addresses(server, f"docs.{ZONE}", "AAAA") == {GATEWAY_V6}
            answer = _answer(server, f"docs.{ZONE}", "A")
            assert answer.flags & dns.flags.AA
            assert {rrset.ttl for rrset in answer.answer} == {60}
            assert _addresses(server, f"vault.{ZONE}") == {GATEWAY_V4}

            # (c) the records change (the operator moved the gateway, a route was added, one
            # deleted): the ConfigMap is rewritten, the kubelet syncs the volume, `hosts ...
            # reload 1s` reads the new file.
            view.put(snapshots.tailscale_service(ips=(MOVED_V4, MOVED_V6)))
            view.put(snapshots.route("jellyfin", hostnames=(f"jellyfin.{ZONE}",)))
            view.put(snapshots.route("vault", hostnames=(f"vault.{ZONE}",), deleted=True))
            changed = await reconciler.reconcile()
            assert [c.zone for c in changed] == [ZONE]
            data = _configmap(kube_apiserver, namespace, "tailwire-dns")
            coredns.project(workspace.volume, _volume(workspace, data))
            await _until(
                lambda: _addresses(server, f"jellyfin.{ZONE}") == {MOVED_V4},
                within=10,
                what="the new route in the hosts file",
            )
            assert _addresses(server, f"docs.{ZONE}") == {MOVED_V4}
            assert _addresses(server, f"docs.{ZONE}", "AAAA") == {MOVED_V6}
            # The deleted route's name is denied as an authoritative server does it: NXDOMAIN
            # with the zone's SOA (TTL 60 for negative caching), not SERVFAIL.
            gone = _answer(server, f"vault.{ZONE}", "A")
            assert gone.rcode() == dns.rcode.NXDOMAIN, gone
            assert [(r.name.to_text(), r.rdtype, r.ttl) for r in gone.authority] == [
                (f"{ZONE}.", dns.rdatatype.SOA, 60)
            ], gone
            apex = _answer(server, ZONE, "SOA")
            assert apex.rcode() == dns.rcode.NOERROR, apex
            assert [r.rdtype for r in apex.answer] == [dns.rdatatype.SOA]

            # (c) the Corefile changes (a zone added to the settings; the dnsupdater restarts
            # and its first pass writes the new Corefile): the `reload` plugin loads it into
            # the same process, and the new zone answers.
            view.put(snapshots.route("grafana", hostnames=(f"grafana.{NEW_ZONE}",)))
            assert _answer(server, f"grafana.{NEW_ZONE}", "A").rcode() == dns.rcode.REFUSED
            restarted = _reconciler(
                view,
                writer=writer,
                namespace=namespace,
                zones=[(ZONE, 60), (NEW_ZONE, 300)],
                workspace=workspace,
            )
            await restarted.reconcile()
            data = _configmap(kube_apiserver, namespace, "tailwire-dns")
            assert f"{NEW_ZONE}:53" in data[corefiles.COREFILE_KEY]
            coredns.project(workspace.volume, _volume(workspace, data))
            await _until(
                lambda: _addresses(server, f"grafana.{NEW_ZONE}") == {MOVED_V4},
                within=15,
                what="the new zone after the Corefile changed",
            )
            assert _addresses(server, f"docs.{ZONE}") == {MOVED_V4}
            assert server.running, server.tail()
    finally:
        await api_client.close()
        kube_apiserver.request(
            "DELETE", f"/api/v1/namespaces/{namespace}/configmaps/tailwire-dns", ok=(200, 404)
        )


async def test_the_in_cluster_rewrite_answers_the_gateway_internal_service(
    kube_apiserver: kubeapiserver.KubeAPIServer, workspace: coredns.Workspace
) -> None:
    # The gateway-internal Service exactly as the ingress renderer makes it (homelab stack).
    (internal,) = ingress.of_kind(ingress.render("homelab-stack"), "Service")
    internal_ns, internal_name = internal["metadata"]["namespace"], internal["metadata"]["name"]
    kube_apiserver.create_namespace(internal_ns)
    cluster_ip = kube_apiserver.apply(internal)["spec"]["clusterIP"]
    # kube-system's CoreDNS ConfigMap, in a namespace of this test's own.
    namespace = "coredns-rewrite"
    kube_apiserver.create_namespace(namespace)
    kube_apiserver.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "coredns", "namespace": namespace},
            "data": {corefiles.COREFILE_KEY: USER_COREFILE},
        }
    )
    api_client: client.ApiClient = await kube_apiserver.api_client()
    writer = dns_kube.KubeWriter(api_client=api_client)

    async def ensure(*zones: str) -> dict[str, str]:
        """What the dnsupdater writes on start with these zones (as `app` wires it)."""
        settings = config.DnsUpdaterSettings.model_validate(
            {
                "zones": [{"zone": z, "backends": ["coredns"]} for z in zones],
                "coredns_configmap": f"{namespace}/coredns",
                "gateway_internal_service": f"{internal_ns}/{internal_name}",
            }
        )
        service_ref, coredns_ref = settings.internal_service_ref(), settings.coredns_ref()
        assert service_ref is not None
        assert coredns_ref is not None
        block = corefiles.render_rewrite_block(
            zones=[z.zone for z in settings.zones],
            internal_service=service_ref[1],
            namespace=service_ref[0],
            cluster_domain=settings.cluster_domain,
        )
        rewrite = coredns_backends.RewriteBlock(
            writer=writer, namespace=coredns_ref[0], configmap=coredns_ref[1], block=block
        )
        assert await rewrite.ensure()
        data = _configmap(kube_apiserver, namespace, "coredns")
        assert data[corefiles.COREFILE_KEY].startswith(USER_COREFILE)
        return _volume(workspace, data)

    service_name = f"{internal_name}.{internal_ns}.svc.cluster.local"
    try:
        volume = await ensure(ZONE)
        with coredns.running(workspace, volume, probe=service_name, within=30) as server:
            # The user's own server block answers the Service (the kubernetes plugin synced).
            await _until(
                lambda: _addresses(server, service_name) == {cluster_ip},
                within=15,
                what=f"{service_name} from the kubernetes plugin",
            )
            # (b) any name of the zone answers the gateway-internal ClusterIP, under the name
            # asked (`answer auto`: no CNAME, no foreign owner name a stub would discard).
            for name in (f"docs.{ZONE}", f"jellyfin.{ZONE}", f"a.b.{ZONE}"):
                answer = _answer(server, name, "A")
                assert answer.rcode() == dns.rcode.NOERROR, answer
                assert [(r.name.to_text(), r.rdtype) for r in answer.answer] == [
                    (f"{name}.", dns.rdatatype.A)
                ], answer
                assert {item.to_text() for item in answer.answer[0]} == {cluster_ip}
            # A single-stack Service has no AAAA: NODATA, not NXDOMAIN (which would make a
            # client give up on the name altogether).
            assert _answer(server, f"docs.{ZONE}", "AAAA").rcode() == dns.rcode.NOERROR
            assert _addresses(server, f"docs.{ZONE}", "AAAA") == set()

            # (c) a zone added: the block is rewritten in the user's ConfigMap and the user's
            # `reload` loads it.
            volume = await ensure(ZONE, NEW_ZONE)
            coredns.project(workspace.volume, volume)
            await _until(
                lambda: _addresses(server, f"grafana.{NEW_ZONE}") == {cluster_ip},
                within=15,
                what="the rewrite of the added zone",
            )
            assert _addresses(server, f"docs.{ZONE}") == {cluster_ip}
            assert server.running, server.tail()
    finally:
        await api_client.close()
        kube_apiserver.request("DELETE", kubeapiserver.object_path(internal), ok=(200, 404))
        kube_apiserver.request(
            "DELETE", f"/api/v1/namespaces/{namespace}/configmaps/coredns", ok=(200, 404)
        )
