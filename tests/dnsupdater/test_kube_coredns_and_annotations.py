"""CoreDNS ConfigMaps and ExternalDNS annotations written through the Kubernetes API."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kubernetes_asyncio import client

from tailwire.services.dnsupdater import config
from tailwire.shared import settings
from tailwire.shared.k8s import labels
from tailwire.testing import kubeapi

from . import golden, snapshots
from .conftest import Feed, ManualTicker, settle, until
from .test_corefile_golden import USER_COREFILE

ALPHA = "external-dns.alpha.kubernetes.io/"
Producer = Callable[..., Any]


def _seed_cluster(api: kubeapi.KubeAPI) -> None:
    for namespace in ("tailwire-system", "tailscale", "docs", "vault"):
        api.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    api.create(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "coredns", "namespace": "kube-system"},
            "data": {"Corefile": USER_COREFILE, "NodeHosts": "10.0.0.5 node-a\n"},
        }
    )
    api.create(
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "Gateway",
            "metadata": {"name": "tailscale-gateway", "namespace": "tailscale"},
            "spec": {"gatewayClassName": "tailscale", "listeners": []},
        }
    )
    for namespace, name, notes in (
        ("docs", "docs", {ALPHA + "expose": "true", "owner": "sudhanva"}),
        ("vault", "vault", {labels.PUBLIC: "true"}),
    ):
        api.create(
            {
                "apiVersion": "gateway.networking.k8s.io/v1",
                "kind": "HTTPRoute",
                "metadata": {"name": name, "namespace": namespace, "annotations": notes},
                "spec": {"hostnames": [f"{name}.sudhanva.me"]},
            }
        )


def _kept(annotations: dict[str, str]) -> dict[str, str]:
    """What the watcher keeps of an object's annotations."""
    return {k: v for k, v in annotations.items() if k.startswith(labels.KEPT_ANNOTATION_PREFIXES)}


def _echo(api: kubeapi.KubeAPI, snapshot: Any, *, plural: str) -> Any:
    """The snapshot the watcher would publish after our patch (same object, new annotations)."""
    stored = api.get(plural, name=snapshot.meta.name, namespace=snapshot.meta.namespace) or {}
    annotations = _kept(stored.get("metadata", {}).get("annotations") or {})
    meta = snapshot.meta.model_copy(
        update={
            "annotations": annotations,
            "resource_version": stored["metadata"]["resourceVersion"],
        }
    )
    return snapshot.model_copy(update={"meta": meta})


async def test_configmaps_and_annotations_follow_and_write_nothing_twice(
    kube_emulator: kubeapi.KubeAPI,
    start_dnsupdater: Any,
    producer: Producer,
    feed: Feed,
    ticker: ManualTicker,
) -> None:
    _seed_cluster(kube_emulator)
    dns_settings = config.DnsUpdaterSettings.model_validate(
        {
            "zones": [{"zone": "sudhanva.me", "backends": ["coredns"]}],
            "coredns_configmap": "kube-system/coredns",
            "gateway_internal_service": "envoy-gateway/gateway-internal",
            "external_dns": True,
            "split_horizon_hostnames": "docs.sudhanva.me",
        }
    )

    async def api_client(_: settings.KubernetesSettings) -> client.ApiClient:
        return await kube_emulator.api_client()

    gateway = snapshots.gateway()
    docs = snapshots.route(
        "docs",
        namespace="docs",
        hostnames=("docs.sudhanva.me",),
        annotations={ALPHA + "expose": "true"},
    )
    vault = snapshots.route(
        "vault",
        namespace="vault",
        hostnames=("vault.sudhanva.me",),
        annotations={labels.PUBLIC: "true"},
    )
    async with start_dnsupdater(dns_settings=dns_settings, api_client_factory=api_client) as wired:
        for snapshot in (gateway, snapshots.tailscale_service(), docs, vault):
            await producer(snapshot)
        change = await feed.next()
        assert change.backend == "coredns"
        assert {r.name for r in change.added} == {"docs.sudhanva.me", "vault.sudhanva.me"}

        def route_annotations(namespace: str, name: str) -> dict[str, str]:
            stored = kube_emulator.get("httproutes", name=name, namespace=namespace) or {}
            return dict(stored["metadata"].get("annotations") or {})

        await until(wired, lambda: ALPHA + "expose" not in route_annotations("docs", "docs"))
        await until(wired, lambda: ALPHA + "expose" in route_annotations("vault", "vault"))

        resolver = kube_emulator.get("configmaps", name="tailwire-dns", namespace="tailwire-system")
        assert resolver is not None
        golden.check("e2e-resolver.Corefile", resolver["data"]["Corefile"])
        golden.check("e2e-sudhanva.me.hosts", resolver["data"]["sudhanva.me.hosts"])
        golden.check("resolver-sudhanva.me.soa", resolver["data"]["sudhanva.me.soa"])
        assert resolver["metadata"]["labels"][labels.MANAGED_BY] == labels.MANAGED_BY_VALUE
        coredns = kube_emulator.get("configmaps", name="coredns", namespace="kube-system")
        assert coredns is not None
        golden.check("e2e-coredns.Corefile", coredns["data"]["Corefile"])
        assert coredns["data"]["Corefile"].startswith(USER_COREFILE)
        assert coredns["data"]["NodeHosts"] == "10.0.0.5 node-a\n"

        # The split-horizon docs route lost the hand-written expose, kept everything else.
        assert route_annotations("docs", "docs") == {"owner": "sudhanva"}
        assert route_annotations("vault", "vault") == {
            labels.PUBLIC: "true",
            ALPHA + "expose": "true",
            labels.DNS_MANAGED_ANNOTATIONS: ALPHA + "expose",
        }
        stored_gateway = kube_emulator.get(
            "gateways", name="tailscale-gateway", namespace="tailscale"
        )
        assert stored_gateway is not None
        assert stored_gateway["metadata"]["annotations"][ALPHA + "target"] == (
            "gateway-envoy.tail1234.ts.net"
        )

        # The watcher echoes the patched objects; a repair finds nothing to do.
        writes = _writes(kube_emulator)
        for echoed in (
            _echo(kube_emulator, docs, plural="httproutes"),
            _echo(kube_emulator, vault, plural="httproutes"),
            _echo(kube_emulator, gateway, plural="gateways"),
        ):
            await producer(echoed)
        await settle(wired)
        ticker.fire()
        await settle(wired)
        await feed.nothing()
        assert _writes(kube_emulator) == writes


def _writes(api: kubeapi.KubeAPI) -> int:
    return sum(1 for r in api.requests if r.verb in ("create", "update", "patch"))


async def test_a_hand_edited_hosts_key_is_repaired(
    kube_emulator: kubeapi.KubeAPI,
    start_dnsupdater: Any,
    producer: Producer,
    feed: Feed,
    ticker: ManualTicker,
) -> None:
    kube_emulator.create(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "tailwire-system"}}
    )
    dns_settings = config.DnsUpdaterSettings.model_validate(
        {"zones": [{"zone": "sudhanva.me", "backends": ["coredns"], "ttl": 30}]}
    )

    async def api_client(_: settings.KubernetesSettings) -> client.ApiClient:
        return await kube_emulator.api_client()

    route = snapshots.route("docs", namespace="docs", hostnames=("docs.sudhanva.me",))
    async with start_dnsupdater(dns_settings=dns_settings, api_client_factory=api_client):
        for snapshot in (
            snapshots.gateway(),
            snapshots.tailscale_service(ips=("100.64.0.10",)),
            route,
        ):
            await producer(snapshot)
        await feed.next()
        kube_emulator.patch(
            "configmaps",
            name="tailwire-dns",
            namespace="tailwire-system",
            patch={"data": {"sudhanva.me.hosts": "192.0.2.1 docs.sudhanva.me\n"}},
        )
        ticker.fire()
        repair = await feed.next()
        assert [(r.value) for r in repair.removed] == ["192.0.2.1"]
        stored = kube_emulator.get("configmaps", name="tailwire-dns", namespace="tailwire-system")
        assert stored is not None
        assert "100.64.0.10 docs.sudhanva.me" in stored["data"]["sudhanva.me.hosts"]
