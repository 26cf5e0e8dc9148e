"""The Gateway stack: `spec.stack.manage` decides what tailwire creates; user-owned objects
are referenced and reported, never overwritten; without `spec.stack` nothing of the stack is
generated and a missing Gateway is reported."""

from __future__ import annotations

from typing import Any

from tailwire.services.renderer.ingress import findings
from tailwire.shared.events import cluster
from tests.renderer.ingress import support

STACK = {
    "wildcardDomain": "example.com",
    "issuerRef": {"name": "letsencrypt"},
    "tailscaleHostname": "gateway-envoy",
}


def _gw(**stack: Any) -> Any:
    return support.gateway(
        support.spec(
            support.tailnet_entry("a", host="{service}.example.com"), stack={**STACK, **stack}
        )
    )


def _kinds(rendered: Any) -> list[str]:
    return sorted({m["kind"] for m in rendered.manifests})


def test_every_part_is_managed_by_default_and_routes_use_the_https_listener() -> None:
    rendered = support.render(_gw(), support.snapshots(support.service("api"), gateways=()))
    assert _kinds(rendered) == [
        "Certificate",
        "EnvoyProxy",
        "Gateway",
        "GatewayClass",
        "HTTPRoute",
        "Service",
    ]
    (route,) = support.of_kind(rendered, "HTTPRoute")
    assert route["spec"]["parentRefs"][0]["sectionName"] == "https"
    (gateway,) = support.of_kind(rendered, "Gateway")
    assert [listener["name"] for listener in gateway["spec"]["listeners"]] == ["https"]
    ready = support.condition(rendered, "Ready")
    assert (ready.status, ready.reason) == ("False", "Pending")
    assert "waiting for it to exist" in ready.message
    # Once the applied Gateway is mirrored back and Programmed, the gateway is Ready.
    applied = cluster.GatewaySnapshot(
        meta=cluster.Meta(
            uid="g", namespace="gateways", name="edge", labels=gateway["metadata"]["labels"]
        ),
        gateway_class_name="tailscale",
        listeners=(cluster.Listener(name="https", port=443, protocol="HTTPS"),),
        programmed=True,
    )
    again = support.render(_gw(), support.snapshots(support.service("api"), gateways=(applied,)))
    assert again.manifests == rendered.manifests
    assert support.condition(again, "Ready").status == "True"


def test_unmanaged_parts_are_referenced_not_generated() -> None:
    rendered = support.render(
        _gw(manage={"gatewayClass": False, "envoyProxy": False, "certificate": False}),
        support.snapshots(support.service("api"), gateways=()),
    )
    assert _kinds(rendered) == ["Gateway", "HTTPRoute", "Service"]
    (gateway,) = support.of_kind(rendered, "Gateway")
    assert gateway["spec"]["gatewayClassName"] == "tailscale"


def test_an_existing_user_owned_gateway_is_referenced_and_reported() -> None:
    theirs = cluster.GatewaySnapshot(
        meta=cluster.Meta(uid="g", namespace="gateways", name="edge", labels={"team": "net"}),
        gateway_class_name="eg",
        listeners=(cluster.Listener(name="web", port=443, protocol="HTTPS"),),
    )
    rendered = support.render(_gw(), support.snapshots(support.service("api"), gateways=(theirs,)))
    assert support.of_kind(rendered, "Gateway") == []
    (route,) = support.of_kind(rendered, "HTTPRoute")
    assert "sectionName" not in route["spec"]["parentRefs"][0]
    (note,) = [p for p in rendered.problems if p.category is findings.Category.REFERENCED]
    assert note.field == "spec.stack.manage.gateway"
    ready = support.condition(rendered, "Ready")
    assert ready.status == "True"
    assert "is not tailwire's" in ready.message


def test_an_existing_user_owned_internal_service_is_not_overwritten() -> None:
    theirs = support.service("gateway-internal", namespace="envoy-gateway-system")
    rendered = support.render(_gw(), support.snapshots(theirs, gateways=()))
    assert support.of_kind(rendered, "Service") == []
    (note,) = [p for p in rendered.problems if p.category is findings.Category.REFERENCED]
    assert note.field == "spec.stack.manage.internalService"


def test_permissive_tls_and_egress_add_a_plain_http_listener_mapped_by_the_internal_service() -> (
    None
):
    gw = support.gateway(
        support.spec(
            support.tailnet_entry("a", host="{service}.example.com"),
            stack=STACK,
            security={"tlsMode": "permissive"},
        )
    )
    rendered = support.render(gw, support.snapshots(gateways=()))
    (gateway,) = support.of_kind(rendered, "Gateway")
    assert [(x["name"], x["port"]) for x in gateway["spec"]["listeners"]] == [
        ("https", 443),
        ("http", 80),
    ]
    (internal,) = support.of_kind(rendered, "Service")
    assert [(p["port"], p["targetPort"]) for p in internal["spec"]["ports"]] == [
        (443, 10443),
        (80, 10080),
    ]


def test_without_a_stack_a_missing_gateway_keeps_ready_false() -> None:
    gw = support.gateway(support.spec(support.tailnet_entry("a", host="{service}.example.com")))
    rendered = support.render(gw, support.snapshots(support.service("api"), gateways=()))
    assert _kinds(rendered) == ["HTTPRoute"]
    ready = support.condition(rendered, "Ready")
    assert (ready.status, ready.reason) == ("False", "Pending")
    assert "spec.gatewayRef: Gateway gateways/edge not found" in ready.message


def test_a_missing_tailnet_is_reported_per_tailnet_and_in_tailnets_ready() -> None:
    gw = support.gateway(
        support.spec(
            support.tailnet_entry("a", host="{service}.a.example.com"),
            support.tailnet_entry("gone", host="{service}.g.example.com"),
        )
    )
    rendered = support.render(gw, support.snapshots(support.service("api")))
    states = {t.name: t.status for t in rendered.status.tailnets}
    assert states == {"a": "Pending", "gone": "NotFound"}  # a: no keyminter check yet
    condition = support.condition(rendered, "TailnetsReady")
    assert (condition.status, condition.reason) == ("False", "TailnetNotFound")
    assert "TailscaleTailnet gone not found" in condition.message


def test_additional_parent_refs_give_the_multi_gateway_pattern() -> None:
    entry = support.tailnet_entry(
        "a",
        host="{service}.example.com",
        additionalParentRefs=[{"name": "internal", "namespace": "network"}],
    )
    rendered = support.render(
        support.gateway(support.spec(entry)), support.snapshots(support.service("grafana"))
    )
    (route,) = support.of_kind(rendered, "HTTPRoute")
    parents = [(p["namespace"], p["name"]) for p in route["spec"]["parentRefs"]]
    assert parents == [("gateways", "edge"), ("network", "internal")]
    assert support.schema_errors(route) == []


def test_a_services_dns_policy_flags_travel_to_its_route_for_the_dnsupdater() -> None:
    gw = support.gateway(support.spec(support.tailnet_entry("a", host="{service}.example.com")))
    docs = support.service("docs", labels={"tailwire.dev/split-horizon": "true"})
    rendered = support.render(gw, support.snapshots(docs, support.service("api")))
    routes = {
        r["spec"]["hostnames"][0]: r["metadata"] for r in support.of_kind(rendered, "HTTPRoute")
    }
    assert routes["docs.example.com"]["annotations"] == {"tailwire.dev/split-horizon": "true"}
    assert "annotations" not in routes["api.example.com"]


def test_a_gateway_its_controller_has_not_programmed_keeps_ready_false() -> None:
    gateway = support.edge_gateway().model_copy(update={"programmed": False})
    gw = support.gateway(support.spec(support.tailnet_entry("a", host="{service}.example.com")))
    rendered = support.render(gw, support.snapshots(support.service("api"), gateways=(gateway,)))
    ready = support.condition(rendered, "Ready")
    assert (ready.status, ready.reason) == ("False", "Pending")
    assert "is not Programmed" in ready.message
    assert len(support.of_kind(rendered, "HTTPRoute")) == 1
