"""loadBalancing -> BackendTrafficPolicy, observability -> EnvoyProxy telemetry, and the
settings that cannot be enforced (access-control tags, mTLS, coordination) reported in
status by field, never silently dropped."""

from __future__ import annotations

from typing import Any

from tailwire.services.renderer.ingress import findings
from tests.renderer.ingress import support

STACK = {"wildcardDomain": "example.com", "issuerRef": {"name": "le"}}


def _render(**more: Any) -> Any:
    gw = support.gateway(
        support.spec(support.tailnet_entry("a", host="{service}.example.com"), **more)
    )
    return support.render(gw, support.snapshots(support.service("api"), gateways=()))


def _not_enforced(rendered: Any) -> dict[str, str]:
    return {
        p.field: p.message
        for p in rendered.problems
        if p.category is findings.Category.NOT_ENFORCED
    }


def test_ring_hash_maps_to_consistent_hash_and_says_so() -> None:
    rendered = _render(loadBalancing={"strategy": "ring_hash"})
    (policy,) = support.of_kind(rendered, "BackendTrafficPolicy")
    assert policy["spec"]["loadBalancer"] == {
        "type": "ConsistentHash",
        "consistentHash": {"type": "SourceIP"},
    }
    assert "Maglev" in _not_enforced(rendered)["spec.loadBalancing.strategy"]
    assert support.schema_errors(policy) == []


def test_observability_becomes_envoy_proxy_telemetry() -> None:
    rendered = _render(
        stack=STACK,
        observability={
            "metrics": {"enabled": True, "port": 19001},
            "tracing": {
                "enabled": True,
                "samplingRate": 0.25,
                "jaegerEndpoint": "http://otel.monitoring:4317",
            },
            "logging": {"level": "warning", "accessLogs": True},
        },
    )
    (proxy,) = support.of_kind(rendered, "EnvoyProxy")
    telemetry = proxy["spec"]["telemetry"]
    assert telemetry["metrics"] == {"prometheus": {"disable": False}}
    assert telemetry["tracing"] == {
        "samplingRate": 25,
        "provider": {"type": "OpenTelemetry", "host": "otel.monitoring", "port": 4317},
    }
    assert telemetry["accessLog"]["settings"][0]["sinks"] == [
        {"type": "File", "file": {"path": "/dev/stdout"}}
    ]
    assert proxy["spec"]["logging"] == {"level": {"default": "warn"}}
    assert _not_enforced(rendered) == {}
    assert support.schema_errors(proxy) == []


def test_a_jaeger_thrift_endpoint_is_sent_otlp_and_reported() -> None:
    rendered = _render(
        stack=STACK,
        observability={
            "tracing": {
                "enabled": True,
                "jaegerEndpoint": "http://jaeger-collector:14268/api/traces",
            }
        },
    )
    (proxy,) = support.of_kind(rendered, "EnvoyProxy")
    assert proxy["spec"]["telemetry"]["tracing"]["provider"]["port"] == 4317
    assert "Thrift" in _not_enforced(rendered)["spec.observability.tracing.jaegerEndpoint"]


def test_observability_without_a_managed_envoy_proxy_is_reported() -> None:
    rendered = _render(observability={"metrics": {"enabled": True}})
    assert "spec.observability" in _not_enforced(rendered)


def test_access_control_tags_are_reported_not_enforced_with_the_malformed_tags() -> None:
    rendered = _render(security={"accessControl": {"allowedTags": ["tag:prod", "prod:server"]}})
    message = _not_enforced(rendered)["spec.security.accessControl"]
    assert "tailnet policy grant" in message
    assert "prod:server are not Tailscale tags" in message
    degraded = support.condition(rendered, "Degraded")
    assert (degraded.status, degraded.reason) == ("True", "NotEnforced")


def test_service_coordination_is_reported() -> None:
    rendered = _render(serviceCoordination={"enabled": True, "strategy": "primary"})
    assert "cross-cluster" in _not_enforced(rendered)["spec.serviceCoordination"]


def test_mtls_validates_clients_against_the_ca_with_a_grant_across_namespaces() -> None:
    rendered = _render(
        security={
            "mtls": {
                "enabled": True,
                "certificateRef": {"name": "client-ca", "namespace": "pki", "key": "tls.crt"},
            }
        }
    )
    (policy,) = support.of_kind(rendered, "ClientTrafficPolicy")
    assert policy["metadata"]["namespace"] == "gateways"
    assert policy["spec"]["targetRefs"] == [
        {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "edge"}
    ]
    assert policy["spec"]["tls"]["clientValidation"]["caCertificateRefs"] == [
        {"group": "", "kind": "Secret", "name": "client-ca", "namespace": "pki"}
    ]
    (grant,) = support.of_kind(rendered, "ReferenceGrant")
    assert grant["metadata"]["namespace"] == "pki"
    assert grant["spec"]["from"][0]["namespace"] == "gateways"
    assert "ca.crt" in _not_enforced(rendered)["spec.security.mtls.certificateRef.key"]
    assert support.schema_errors(policy) == []
    assert support.schema_errors(grant) == []


def test_mtls_without_a_certificate_ref_is_invalid() -> None:
    rendered = _render(security={"mtls": {"enabled": True}})
    assert rendered.manifests == ()
    assert "spec.security.mtls.certificateRef" in support.condition(rendered, "Ready").message


def test_egress_retry_and_timeout_and_rewrite() -> None:
    gw = support.gateway(
        support.spec(
            {
                "name": "a",
                "tailscaleTailnetRef": {"kind": "TailscaleTailnet", "name": "a"},
                "routeGeneration": {
                    "egress": {
                        "enabled": True,
                        "hostPattern": "{service}.internal.example.com",
                        "pathPrefix": "/api/{service}/",
                        "rewriteRules": [{"from": "/api/{service}/", "to": "/"}],
                        "timeout": "15s",
                        "retryPolicy": {"numRetries": 2, "perTryTimeout": "5s"},
                    }
                },
            }
        )
    )
    target = support.service(
        "wiki", port_name="http", port=80, annotations={"tailscale.com/tailnet-ip": "100.64.0.7"}
    )
    rendered = support.render(gw, support.snapshots(target))
    (backend,) = support.of_kind(rendered, "Backend")
    assert backend["spec"]["endpoints"] == [{"ip": {"address": "100.64.0.7", "port": 80}}]
    (route,) = support.of_kind(rendered, "HTTPRoute")
    (rule,) = route["spec"]["rules"]
    assert rule["matches"][0]["path"]["value"] == "/api/wiki/"
    assert rule["filters"][0]["urlRewrite"]["path"] == {
        "type": "ReplacePrefixMatch",
        "replacePrefixMatch": "/",
    }
    assert rule["timeouts"] == {"request": "15s"}
    assert rule["backendRefs"][0]["kind"] == "Backend"
    (policy,) = support.of_kind(rendered, "BackendTrafficPolicy")
    assert policy["spec"]["retry"] == {"numRetries": 2, "perRetry": {"timeout": "5s"}}
    problems = [line for m in rendered.manifests for line in support.schema_errors(m)]
    assert problems == []
