"""The running renderer with a TailscaleGateway, from the bus (a real nats-server) to the
emulated Kubernetes API: routes applied with server-side apply, the route of a vanished
Service pruned, a user's HTTPRoute untouched, and the seed-reference status written."""

from __future__ import annotations

from typing import Any

from faststream.nats import NatsBroker

from tailwire.shared import bus, settings, subjects
from tailwire.shared.events import cluster
from tailwire.shared.k8s import labels
from tailwire.testing import kubeapi
from tests.fixtures.kube import kube_emulator  # noqa: F401  (not yet in the root conftest)
from tests.renderer import helpers
from tests.renderer.ingress import support

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
            support.tailnet("a"),
            support.edge_gateway(),
            support.service("api"),
        )
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
    assert now["status"]["tailnets"] == [
        {"name": "a", "status": "Ready", "servicesCount": 1, "routesGenerated": 1}
    ]
