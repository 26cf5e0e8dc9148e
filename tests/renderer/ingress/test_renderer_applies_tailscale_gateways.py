"""The running renderer with a TailscaleGateway, from the bus (a real nats-server) to the
emulated Kubernetes API: routes applied with server-side apply, the route of a vanished
Service pruned, a user's HTTPRoute untouched, the seed-reference status written, and a
deleted TailscaleGateway's whole stack removed before its finalizer lets it go."""

from __future__ import annotations

import datetime
from typing import Any

from faststream.nats import NatsBroker

from tailwire.services.watcher import domain as watcher_domain
from tailwire.shared import bus, settings, subjects
from tailwire.shared.events import cluster, keys
from tailwire.shared.k8s import labels
from tailwire.testing import kubeapi, system
from tests.fixtures.kube import kube_emulator  # noqa: F401  (not yet in the root conftest)
from tests.renderer import helpers
from tests.renderer.ingress import support

TAILSCALE_GATEWAYS = next(
    r for r in watcher_domain.RESOURCES if r.kind == subjects.Kind.TAILSCALEGATEWAY
)
SPEC = support.spec(support.tailnet_entry("a", host="{service}.example.com"))


async def _publish(broker: NatsBroker, *events: Any) -> None:
    for event in events:
        await bus.publish(broker, event, subject=subjects.cluster(event.ref), msg_id=event.dedup_id)


def _owned_route(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {
            "name": name,
            "namespace": "apps",
            "labels": {
                labels.MANAGED_BY: labels.MANAGED_BY_VALUE,
                labels.OWNER_KIND: "TailscaleGateway",
                labels.OWNER_NAME: "gw",
                labels.OWNER_NAMESPACE: "apps",
            },
        },
        "spec": {"hostnames": ["gone.example.com"]},
    }


async def test_routes_are_applied_pruned_and_status_written(
    bus_settings: settings.BusSettings,
    kube_emulator: kubeapi.KubeAPI,  # noqa: F811
) -> None:
    api = kube_emulator
    for namespace in ("apps", "gateways"):
        api.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    created = api.create(
        {
            "apiVersion": "gateway.tailscale.com/v1alpha1",
            "kind": "TailscaleGateway",
            "metadata": {"name": "gw", "namespace": "apps"},
            "spec": SPEC,
        }
    )
    api.create(_owned_route("gw-a-gone"))  # the route of a Service that disappeared
    theirs = {
        **_owned_route("hand-written"),
        "metadata": {"name": "hand-written", "namespace": "apps"},
    }
    api.create(theirs)
    tailnet_a = support.tailnet("a")
    api.create(
        {
            "apiVersion": tailnet_a.api_version,
            "kind": "TailscaleTailnet",
            "metadata": {"name": "a"},
            "spec": tailnet_a.spec,
        }
    )
    connected = keys.TailnetChecked(
        tailnet="a",
        uid=tailnet_a.meta.uid,
        generation=tailnet_a.meta.generation,
        connected=True,
        reason="Connected",
        checked_at=datetime.datetime(2026, 11, 22, 6, 5, tzinfo=datetime.UTC),
        last_connected=datetime.datetime(2026, 11, 22, 6, 5, tzinfo=datetime.UTC),
    )
    gateway_snapshot = cluster.TailscaleGatewaySnapshot(
        meta=cluster.Meta(
            uid=created["metadata"]["uid"], namespace="apps", name="gw", generation=1
        ),
        api_version="gateway.tailscale.com/v1alpha1",
        spec=SPEC,
    )
    async with helpers.producer(bus_settings) as broker:
        await _publish(
            broker,
            gateway_snapshot,
            tailnet_a,
            support.edge_gateway(),
            support.service("api"),
        )
        # What the keyminter says after it checked tailnet a's control API.
        await bus.publish(broker, connected, subject=subjects.keys_tailnet("a"), msg_id="check-a")
        async with helpers.running_renderer(
            bus_settings, kube_client_factory=api.api_client
        ) as renderer:
            await helpers.settled(renderer)
            assert renderer.sync is not None
            await renderer.sync.synced.wait()

    route = api.get("httproutes", name="gw-a-api", namespace="apps")
    assert route is not None
    assert route["spec"]["hostnames"] == ["api.example.com"]
    assert {m["manager"] for m in route["metadata"]["managedFields"]} == {"tailwire"}
    assert api.get("httproutes", name="gw-a-gone", namespace="apps") is None
    assert api.get("httproutes", name="hand-written", namespace="apps") is not None
    now = api.get("tailscalegateways", name="gw", namespace="apps")
    assert now is not None
    conditions = {c["type"]: c for c in now["status"]["conditions"]}
    assert conditions["Ready"]["status"] == "True"
    assert conditions["Ready"]["reason"] == "GatewayConfigured"
    assert all(c.get("lastTransitionTime") for c in conditions.values()), conditions
    assert now["status"]["gatewayInfo"]["routeCount"] == 1
    assert now["status"]["gatewayInfo"]["lastReconciled"].endswith("Z")
    assert now["status"]["tailnets"] == [
        {
            "name": "a",
            "status": "Connected",
            "lastConnected": "2026-11-22T06:05:00Z",
            "servicesCount": 1,
            "routesGenerated": 1,
        }
    ]
    assert conditions["TailnetsReady"]["reason"] == "AllTailnetsConnected"
    written = api.get("tailscaletailnets", name="a")
    assert written is not None
    [ready] = written["status"]["conditions"]
    assert (ready["type"], ready["status"], ready["reason"]) == ("Ready", "True", "Connected")
    assert ready["lastTransitionTime"].endswith("Z")
    assert written["status"]["lastConnected"] == "2026-11-22T06:05:00Z"


async def test_a_deleted_gateway_takes_its_whole_stack_with_it(
    bus_settings: settings.BusSettings,
    kube_emulator: kubeapi.KubeAPI,  # noqa: F811
) -> None:
    """The managed stack (GatewayClass, EnvoyProxy, Certificate: kinds no one mirrors onto
    the bus) and the routes go before the TailscaleGateway does: its finalizer holds it."""
    api = kube_emulator
    for namespace in ("apps", "gateways"):
        api.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    spec = support.spec(
        support.tailnet_entry("a", host="{service}.example.com"),
        stack={"wildcardDomain": "example.com", "issuerRef": {"name": "le"}},
    )
    api.create(
        {
            "apiVersion": "gateway.tailscale.com/v1alpha1",
            "kind": "TailscaleGateway",
            "metadata": {"name": "gw", "namespace": "apps"},
            "spec": spec,
        }
    )

    def snapshot() -> cluster.TailscaleGatewaySnapshot:
        live = api.get("tailscalegateways", name="gw", namespace="apps")
        assert live is not None
        found = watcher_domain.normalize(TAILSCALE_GATEWAYS, live)
        assert isinstance(found, cluster.TailscaleGatewaySnapshot)
        return found

    def owned() -> list[str]:
        return sorted(
            f"{kind}/{obj['metadata']['name']}"
            for kind in ("gatewayclasses", "envoyproxies", "certificates", "httproutes")
            for obj in api.objects(kind)
            if (obj["metadata"].get("labels") or {}).get(labels.OWNER_NAME) == "gw"
        )

    async with (
        helpers.producer(bus_settings) as broker,
        helpers.running_renderer(bus_settings, kube_client_factory=api.api_client) as renderer,
    ):
        await _publish(
            broker, snapshot(), support.tailnet("a"), support.service("api"), *support.CONSENTING
        )
        assert renderer.sync is not None
        await system.eventually(
            lambda: labels.FINALIZER in snapshot().meta.finalizers,
            what="the finalizer",
            within=30,
        )
        # The finalizer can come with the first apply, before the routes: wait for them all.
        kinds = {"gatewayclasses", "envoyproxies", "certificates", "httproutes"}
        await system.eventually(
            lambda: {item.split("/")[0] for item in owned()} == kinds,
            what="the whole stack",
            within=30,
        )

        held = api.delete("tailscalegateways", name="gw", namespace="apps")
        assert held is not None  # the finalizer holds it
        await _publish(broker, snapshot())  # what the watcher would mirror
        await system.eventually(
            lambda: api.get("tailscalegateways", name="gw", namespace="apps") is None,
            what="the TailscaleGateway to go",
            within=30,
        )
        assert owned() == []
