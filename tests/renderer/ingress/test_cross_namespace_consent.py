"""Issue 18, finding 1: a TailscaleGateway writes into another namespace only with that
namespace's consent. Without it a tenant's TailscaleGateway rendered HTTPRoutes for another
team's Services into their namespace, a ReferenceGrant granting itself their Secret, a
Gateway and Services there. Now nothing is written into a namespace that has not accepted
the TailscaleGateway's namespace (annotation `tailwire.dev/accept-from` on the Namespace, set
by whoever may edit Namespaces: a cluster admin), and the status names the field, the
namespace and the annotation that would consent."""

from __future__ import annotations

from typing import Any

from tailwire.services.renderer.ingress import inputs, rendering
from tests.renderer.ingress import support

TENANT = "tenant-a"


def _render(spec: dict[str, Any], *, namespaces: tuple[Any, ...]) -> rendering.Rendered:
    gateway = support.gateway(spec, namespace=TENANT)
    snapshots = support.snapshots(
        support.service("api", namespace=TENANT),
        support.service("billing", namespace="team-b"),
        namespaces=namespaces,
    )
    return support.render(gateway, snapshots)


def _spec(**more: Any) -> dict[str, Any]:
    entry = support.tailnet_entry("a", host="{service}.example.com", namespaces=[TENANT, "team-b"])
    return {
        "gatewayRef": {"kind": "Gateway", "name": "edge", "namespace": TENANT},
        "tailnets": [entry],
        **more,
    }


def _written_into(rendered: rendering.Rendered) -> set[str]:
    return {m["metadata"].get("namespace") or "" for m in rendered.manifests}


def test_routes_for_another_teams_services_need_that_namespaces_consent() -> None:
    refused = _render(_spec(), namespaces=())
    assert "team-b" not in _written_into(refused)
    assert [m["spec"]["hostnames"] for m in support.of_kind(refused, "HTTPRoute")] == [
        ["api.example.com"]
    ]
    degraded = support.condition(refused, "Degraded")
    assert (degraded.status, degraded.reason) == ("True", "NotPermitted")
    assert "spec.tailnets[0].routeGeneration.ingress.namespaces" in degraded.message
    assert "namespace team-b has not accepted writes from namespace tenant-a" in degraded.message
    assert f"{inputs.ACCEPT_FROM}: tenant-a on Namespace team-b" in degraded.message

    accepted = _render(_spec(), namespaces=(support.consenting("team-b", TENANT),))
    assert "team-b" in _written_into(accepted)
    assert support.condition(accepted, "Degraded").reason != "NotPermitted"
    # Consent names namespaces: another tenant's consent is not this one's.
    other = _render(_spec(), namespaces=(support.consenting("team-b", "tenant-z"),))
    assert "team-b" not in _written_into(other)


def test_a_grant_to_another_namespaces_secret_needs_its_consent() -> None:
    mtls = {"mtls": {"enabled": True, "certificateRef": {"name": "ca", "namespace": "team-b"}}}
    refused = _render(_spec(security=mtls), namespaces=())
    assert support.of_kind(refused, "ReferenceGrant") == []
    message = support.condition(refused, "Degraded").message
    assert "spec.security.mtls.certificateRef.namespace" in message
    assert "ReferenceGrant" in message


def test_a_gateway_or_envoy_services_elsewhere_need_consent_too() -> None:
    spec = _spec(stack={"wildcardDomain": "example.com", "issuerRef": {"name": "le"}})
    spec["gatewayRef"]["namespace"] = "shared-gateways"
    refused = _render(spec, namespaces=())
    assert "shared-gateways" not in _written_into(refused)
    message = support.condition(refused, "Degraded").message
    assert "spec.gatewayRef.namespace" in message
    assert "envoy-gateway-system" not in _written_into(refused)
    assert "spec.stack.envoyNamespace" in message
    everyone = _render(
        spec,
        namespaces=(
            support.consenting("shared-gateways", "*"),
            support.consenting("envoy-gateway-system", TENANT),
            support.consenting("team-b", TENANT),
        ),
    )
    assert {"shared-gateways", "envoy-gateway-system"} <= _written_into(everyone)
