"""Proof 8 of issue 13: the central services on the real kube-apiserver, with deploy/base's RBAC.

A kube-apiserver of its own (the services watch the whole cluster; the session's shared
server holds other tests' objects), prepared as a user would: the CRDs of deploy/crds,
deploy/base's namespace, ServiceAccounts and grants (plus the HA overlay's Lease grant, as
leader election is on), the cluster's CoreDNS ConfigMap, a Node and, in namespace
`payments`, a Running member pod and the seed group `examples/egressgroup-payments.yaml`.
Then watcher, keyminter, renderer and dnsupdater run as `tailwire run` processes
(testing/system, `Options(kubeconfig=..., nodes=())`), each with a bound token of its own
ServiceAccount, so every call they make is authorized by the real RBAC. The watcher pages its
lists one object at a time, ends its watches every second and relists every 3 s, so continue
tokens, resumed watches and resyncs meet the real server during the test.

Checked through the real API with the admin's client: each service holds its Lease; the
renderer wrote the group's status through the status subresource, its finalizer, the Node
label and the gateway DaemonSet and ConfigMap (server-side apply, field manager tailwire,
owned by the group); the keyminter minted the authkey into a Secret; the dnsupdater wrote its
resolver ConfigMap and the CoreDNS rewrite; the status summary reached the bus. A named
TailscaleTailnet whose OAuth client is in a Secret (on the local control-API stand-in) is
checked by the keyminter and reported Connected by the renderer. A spec change
is observed (observedGeneration), a deleted pod leaves the group, and deleting the group
removes what it owned and releases its finalizer. No service logged a warning or an error
(but that the Gateway API CRDs are not installed), no watch expired, every service stopped
cleanly and released its Lease. The nodeagent (and so a pod acked on its node) is not part of
this test: no gateway runs, so the group stays WaitingForNodes while it has members.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tailwire.services.renderer.egress import manifests
from tailwire.shared import subjects
from tailwire.shared.events import status
from tailwire.shared.k8s import labels, names
from tailwire.testing import kubeapiserver, system

pytestmark = [pytest.mark.real_peers, pytest.mark.slow]

ROOT = kubeapiserver.CRDS.parents[1]
NS = system.GATEWAY_NAMESPACE
RBAC_KINDS = {
    "Namespace",
    "ServiceAccount",
    "Role",
    "ClusterRole",
    "RoleBinding",
    "ClusterRoleBinding",
}
GROUP = "/apis/tailscale.rajsingh.info/v1alpha1/egressgroups/payments"
POD = "/api/v1/namespaces/payments/pods/api-0"
NODE = "/api/v1/nodes/node-a"
TAILNET = "/apis/gateway.tailscale.com/v1alpha1/tailscaletailnets/local"
SECRET = f"/api/v1/namespaces/{NS}/secrets/{names.authkey_secret('payments')}"
COREDNS = "/api/v1/namespaces/kube-system/configmaps/coredns"
MERGE = "application/merge-patch+json"
ENV = {
    "TAILWIRE_LEADER_ELECTION": "true",
    "TAILWIRE_DNS_ZONES": json.dumps([{"zone": "example.test", "backends": ["coredns"]}]),
    "TAILWIRE_DNS_COREDNS_CONFIGMAP": "kube-system/coredns",
    "TAILWIRE_DNS_GATEWAY_INTERNAL_SERVICE": f"{NS}/gateway-internal",
    "TAILWIRE_WATCH_TIMEOUT": "1",
    "TAILWIRE_WATCH_LIST_PAGE_SIZE": "1",
    "TAILWIRE_WATCH_RESYNC_INTERVAL": "3",
}
COMPLAINTS = ("WARNING", "ERROR", "CRITICAL")
# The only warnings expected: the Gateway API CRDs are not installed on this server.
EXPECTED_WARNING = re.compile(r"^(gateway|httproute) is not served \(CRD not installed\?\)")


def prepare(server: kubeapiserver.KubeAPIServer) -> dict[str, Path]:
    """The cluster as a user leaves it before starting tailwire; a kubeconfig per service."""
    kubeapiserver.install_crds(server)
    for document in kubeapiserver.kustomize(ROOT / "deploy" / "base"):
        if document["kind"] in RBAC_KINDS:
            server.apply(document)
    for document in yaml.safe_load_all((ROOT / "deploy/overlays/ha/leases.yaml").read_text()):
        server.apply(document)
    server.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "coredns", "namespace": "kube-system"},
            "data": {"Corefile": ".:53 {\n    forward . /etc/resolv.conf\n}\n"},
        }
    )
    server.apply(
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": "node-a", "labels": {"kubernetes.io/hostname": "node-a"}},
        }
    )
    server.create_namespace("payments")
    server.apply(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "api-0",
                "namespace": "payments",
                "labels": {"tailgate.dev/egress": "true"},
            },
            "spec": {"nodeName": "node-a", "containers": [{"name": "app", "image": "app"}]},
        }
    )
    running = {"phase": "Running", "podIP": "10.244.0.10", "podIPs": [{"ip": "10.244.0.10"}]}
    server.request("PATCH", f"{POD}/status", body={"status": running}, content_type=MERGE)
    for document in yaml.safe_load_all((ROOT / "examples/egressgroup-payments.yaml").read_text()):
        server.apply(document)
    return {
        service: server.service_account_kubeconfig(NS, f"tailwire-{service}")
        for service in system.CENTRAL_SERVICES
    }


def group_status(
    server: kubeapiserver.KubeAPIServer, predicate: Callable[[dict[str, Any]], bool]
) -> Callable[[], dict[str, Any] | None]:
    """A probe: the group when its written status satisfies `predicate`."""

    def probe() -> dict[str, Any] | None:
        group = server.get(GROUP) or {}
        written = group.get("status") or {}
        return group if written.get("conditions") and predicate(written) else None

    return probe


def conditions(written: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in written["conditions"]}


async def relists(process: system.ServiceProcess, *, kind: str, reason: str) -> float:
    """The watcher's count of full lists of `kind` for `reason`, from its /metrics."""
    async with httpx.AsyncClient() as client:
        response = await client.get(f"http://127.0.0.1:{process.health_port}/metrics")
    wanted = f'tailwire_watcher_relists_total{{kind="{kind}",reason="{reason}"}} '
    for line in response.text.splitlines():
        if line.startswith(wanted):
            return float(line.removeprefix(wanted))
    return 0.0


def ready(found: dict[str, Any] | None) -> dict[str, Any] | None:
    """`found` when its status says Ready=True."""
    written = (found or {}).get("status") or {}
    ready_ = [c for c in written.get("conditions") or [] if c["type"] == "Ready"]
    return found if ready_ and ready_[0]["status"] == "True" else None


def lease_holders(server: kubeapiserver.KubeAPIServer) -> dict[str, str]:
    """Lease name -> its holder, for the Leases someone holds in tailwire-system."""
    leases = server.request("GET", f"/apis/coordination.k8s.io/v1/namespaces/{NS}/leases")
    return {
        lease["metadata"]["name"]: lease["spec"]["holderIdentity"]
        for lease in leases["items"]
        if lease["spec"].get("holderIdentity")
    }


def unexpected_warnings(log: Path) -> list[str]:
    found = []
    for line in log.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue  # FastStream's own plain start-up lines
        if not isinstance(record, dict) or record.get("level") not in COMPLAINTS:
            continue
        if not EXPECTED_WARNING.match(str(record.get("msg"))):
            found.append(f"{record.get('level')} {record.get('msg')}")
    return found


def owned_by_group(server: kubeapiserver.KubeAPIServer, path: str, group_uid: str) -> bool:
    found = server.get(path) or {}
    metadata = found.get("metadata") or {}
    owners = [o["uid"] for o in metadata.get("ownerReferences") or []]
    managers = {m["manager"] for m in metadata.get("managedFields") or []}
    return owners == [group_uid] and "tailwire" in managers


@pytest.mark.timeout(240)
async def test_central_services_reconcile_the_seed_group_on_the_real_kube_apiserver() -> None:
    with kubeapiserver.running() as server:
        kubeconfigs = prepare(server)
        options = system.Options(
            kubeconfig=server.kubeconfig_path, nodes=(), service_kubeconfigs=kubeconfigs, env=ENV
        )
        ref = subjects.ObjectRef(kind=subjects.Kind.EGRESSGROUP, namespace=None, name="payments")
        async with system.running(options) as s:
            assert sorted(s.processes) == sorted(system.CENTRAL_SERVICES)
            every_lease = {f"tailwire-{service}" for service in system.CENTRAL_SERVICES}
            await system.eventually(
                lambda: lease_holders(server).keys() >= every_lease,
                within=30,
                what="every central service holding its Lease",
            )

            # The group, reconciled: status by the renderer through /status.
            group = await system.eventually(
                group_status(
                    server,
                    lambda st: (
                        st.get("matchedPods") == 1
                        and conditions(st).get("KeyReady", ("",))[0] == "True"
                    ),
                ),
                within=45,
                what="the group's status with its member and its key",
            )
            written = group["status"]
            assert written["gatewayNodes"] == ["node-a"], written
            assert written["observedGeneration"] == group["metadata"]["generation"] == 1
            assert conditions(written)["Ready"] == ("False", "WaitingForNodes"), written
            assert conditions(written)["KeyReady"] == ("True", "KeyIssued"), written
            assert labels.FINALIZER in group["metadata"]["finalizers"]
            writers = {
                (m["manager"], m.get("subresource", "")) for m in group["metadata"]["managedFields"]
            }
            assert any(sub == "status" for _, sub in writers), writers
            uid = group["metadata"]["uid"]
            gateway = names.gateway_workload("payments")
            for path in (
                f"/apis/apps/v1/namespaces/{NS}/daemonsets/{gateway}",
                f"/api/v1/namespaces/{NS}/configmaps/{gateway}",
            ):
                assert owned_by_group(server, path, uid), server.get(path)
            node_labels = (server.get(NODE) or {})["metadata"]["labels"]
            assert node_labels.get(manifests.node_label("payments")) == "true", node_labels
            assert await system.eventually(lambda: server.get(SECRET), within=30, what="Secret")
            summary = status.StatusSummary.model_validate_json(
                await s.wait_for_stored(subjects.status(ref), within=30)
            )
            assert (summary.kind, summary.name) == (subjects.Kind.EGRESSGROUP, "payments")
            corefile = await system.eventually(
                lambda: "example.test" in ((server.get(COREDNS) or {})["data"]["Corefile"]),
                within=30,
                what="the CoreDNS rewrite",
            )
            assert corefile
            assert server.get(f"/api/v1/namespaces/{NS}/configmaps/tailwire-dns")

            # A named tailnet, its OAuth client in a Secret: checked by the keyminter (get
            # TailscaleTailnet, read the Secret), its status written by the renderer.
            assert s.control is not None
            oauth = s.control.add_oauth_client(
                scopes=["auth_keys", "devices:core"], tags=["tag:k8s"]
            )
            server.apply(
                {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "metadata": {
                        "name": "local-tailnet-oauth",
                        "namespace": NS,
                        "annotations": {"tailwire.dev/tailnets": "local"},
                    },
                    "stringData": {
                        "client_id": oauth.client_id,
                        "client_secret": oauth.client_secret,
                    },
                }
            )
            server.apply(
                {
                    "apiVersion": "gateway.tailscale.com/v1alpha1",
                    "kind": "TailscaleTailnet",
                    "metadata": {"name": "local"},
                    "spec": {
                        "apiURL": s.control.url,
                        "oauthSecretName": "local-tailnet-oauth",
                        "oauthSecretNamespace": NS,
                        "tags": ["tag:k8s"],
                    },
                }
            )
            tailnet = await system.eventually(
                lambda: ready(server.get(TAILNET)), within=30, what="the TailscaleTailnet Ready"
            )
            assert tailnet["status"]["conditions"][0]["reason"] == "Connected", tailnet["status"]
            assert tailnet["status"]["lastConnected"], tailnet["status"]

            # Once the watcher has relisted on its timer and resumed watching from the
            # resourceVersion of that list:
            watcher = s.processes["watcher"]
            await system.eventually(
                lambda: relists(watcher, kind="egressgroup", reason="resync"),
                within=30,
                what="the watcher relisting EgressGroups on its resync timer",
            )
            # The spec change is observed; the bus hears of it too.
            async with s.capture() as seen:
                spec = {"spec": {"acceptRoutes": False}}
                server.request("PATCH", GROUP, body=spec, content_type=MERGE)
                await system.eventually(
                    group_status(server, lambda st: st.get("observedGeneration") == 2),
                    within=30,
                    what="the spec change observed",
                )
                await seen.wait_for(subjects.status(ref), within=20)

            # The member pod goes: the group has no member and no gateway node left.
            server.request("DELETE", POD, params={"gracePeriodSeconds": "0"})
            group = await system.eventually(
                group_status(server, lambda st: st.get("matchedPods") == 0),
                within=30,
                what="the pod gone from the group",
            )
            assert group["status"]["gatewayNodes"] == [], group["status"]
            await system.eventually(
                lambda: (
                    manifests.node_label("payments")
                    not in (server.get(NODE) or {})["metadata"].get("labels", {})
                ),
                within=30,
                what="the Node's gateway label removed",
            )

            # The group goes: what it owned is removed, then its finalizer released.
            server.request("DELETE", GROUP)
            await system.eventually(
                lambda: server.get(GROUP) is None, within=30, what="the group deleted"
            )
            owned = (
                f"/apis/apps/v1/namespaces/{NS}/daemonsets/{gateway}",
                f"/api/v1/namespaces/{NS}/configmaps/{gateway}",
                SECRET,
            )
            await system.eventually(
                lambda: all(server.get(path) is None for path in owned),
                within=30,
                what="the group's DaemonSet, ConfigMap and Secret removed",
            )
            # The real server never expired a watch nor dropped a connection meanwhile.
            for reason in ("expired", "reconnect"):
                assert not await relists(watcher, kind="egressgroup", reason=reason), reason
                assert not await relists(watcher, kind="pod", reason=reason), reason
            complaints = {
                name: unexpected_warnings(process.log_path) for name, process in s.processes.items()
            }
        logs = "\n".join(f"--- {name}\n{tail}" for name, tail in s.unclean_logs.items())
        assert all(code == 0 for code in s.exit_codes.values()), f"{s.exit_codes}\n{logs}"
        # Nothing refused, conflicting or failing: no warning or error in any service's log.
        assert complaints == {name: [] for name in complaints}, complaints
        # Leader election: every Lease released on the clean stop.
        assert lease_holders(server) == {}
