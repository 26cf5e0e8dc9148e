"""Envoy Gateway policies from a TailscaleGateway: `loadBalancing` (strategy, health checks,
circuit breaker) and egress `retryPolicy` -> BackendTrafficPolicy; `observability` ->
EnvoyProxy telemetry; `security` and `serviceCoordination` -> what can be enforced, and a
finding for everything that cannot (docs/ingress.md has the mapping). Pure, no I/O.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

from tailwire.services.renderer.ingress import findings, naming
from tailwire.shared.resources import tailscalegateway

_STRATEGY = {
    "round_robin": "RoundRobin",
    "least_request": "LeastRequest",
    "random": "Random",
    # Envoy Gateway's consistent hash is Maglev; ring_hash is reported as mapped to it.
    "ring_hash": "ConsistentHash",
    "consistent_hash": "ConsistentHash",
}
# Jaeger's collector speaks OTLP/gRPC on 4317; its 14268 port is Thrift, which Envoy lacks.
_OTLP_GRPC_PORT = 4317
_JAEGER_THRIFT_PORT = 14268
# Envoy's own default access-log line.
ACCESS_LOG_FORMAT = (
    '[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" '
    "%RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% "
    '"%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" "%REQ(X-REQUEST-ID)%" '
    '"%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%"\n'
)
# Envoy Gateway serves the proxies' Prometheus metrics on this fixed port.
ENVOY_METRICS_PORT = 19001


def traffic_policy_spec(
    gateway: tailscalegateway.TailscaleGateway,
    *,
    health_check: tailscalegateway.HealthCheck | None = None,
    retry: tailscalegateway.RetryPolicy | None = None,
) -> dict[str, Any]:
    """The BackendTrafficPolicy spec (without targetRefs) for one generated route; empty when
    nothing applies. A per-route health check overrides the global one."""
    spec: dict[str, Any] = {}
    balancing = gateway.spec.load_balancing
    if balancing is not None:
        balancer: dict[str, Any] = {"type": _STRATEGY[balancing.strategy]}
        if balancer["type"] == "ConsistentHash":
            balancer["consistentHash"] = {"type": "SourceIP"}
        spec["loadBalancer"] = balancer
    checks: dict[str, Any] = {}
    active = health_check if health_check is not None and health_check.enabled else None
    if active is None and balancing is not None and balancing.health_checking is not None:
        active = balancing.health_checking if balancing.health_checking.enabled else None
    if active is not None:
        # No path is configured anywhere in the spec, so the check is a TCP connect.
        checks["active"] = {
            "type": "TCP",
            "tcp": {},
            "interval": active.interval,
            "timeout": active.timeout,
            "healthyThreshold": active.healthy_threshold,
            "unhealthyThreshold": active.unhealthy_threshold,
        }
    breaker = balancing.circuit_breaker if balancing is not None else None
    if breaker is not None and breaker.enabled:
        limits = {
            "maxConnections": breaker.max_connections,
            "maxPendingRequests": breaker.max_pending_requests,
            "maxParallelRequests": breaker.max_requests,
            "maxParallelRetries": breaker.max_retries,
        }
        limits = {key: value for key, value in limits.items() if value is not None}
        if limits:
            spec["circuitBreaker"] = limits
        ejection = {
            "consecutive5XxErrors": breaker.consecutive_errors,
            "interval": breaker.interval,
            "baseEjectionTime": breaker.base_ejection_time,
            "maxEjectionPercent": breaker.max_ejection_percent,
        }
        ejection = {key: value for key, value in ejection.items() if value is not None}
        if ejection:
            checks["passive"] = ejection
    if checks:
        spec["healthCheck"] = checks
    if retry is not None:
        policy: dict[str, Any] = {"numRetries": retry.num_retries}
        per_retry: dict[str, Any] = {}
        if retry.per_try_timeout:
            per_retry["timeout"] = retry.per_try_timeout
        backoff = {
            key: value
            for key, value in (
                ("baseInterval", retry.backoff_base_interval),
                ("maxInterval", retry.backoff_max_interval),
            )
            if value
        }
        if backoff:
            per_retry["backOff"] = backoff
        if per_retry:
            policy["perRetry"] = per_retry
        spec["retry"] = policy
    return spec


def traffic_policy(
    *, route: dict[str, Any], spec: dict[str, Any], labels: dict[str, str]
) -> dict[str, Any]:
    """A BackendTrafficPolicy for one route, named like it, in its namespace."""
    metadata = route["metadata"]
    return {
        "apiVersion": naming.ENVOY_API,
        "kind": "BackendTrafficPolicy",
        "metadata": {
            "name": metadata["name"],
            "namespace": metadata["namespace"],
            "labels": labels,
        },
        "spec": {
            "targetRefs": [
                {"group": naming.GATEWAY_GROUP, "kind": "HTTPRoute", "name": metadata["name"]}
            ],
            **spec,
        },
    }


def balancing_findings(gateway: tailscalegateway.TailscaleGateway) -> list[findings.Finding]:
    notes: list[findings.Finding] = []
    balancing = gateway.spec.load_balancing
    if balancing is None:
        return notes
    if balancing.strategy == "ring_hash":
        notes.append(
            findings.finding(
                category=findings.Category.NOT_ENFORCED,
                field="spec.loadBalancing.strategy",
                message="ring_hash: Envoy Gateway's consistent hash is Maglev; "
                "applied as ConsistentHash on the source IP",
            )
        )
    return notes


def envoy_telemetry(
    observability: tailscalegateway.ObservabilityConfig | None,
) -> tuple[dict[str, Any], list[findings.Finding]]:
    """EnvoyProxy `telemetry` and `logging` from spec.observability."""
    if observability is None:
        return {}, []
    notes: list[findings.Finding] = []
    telemetry: dict[str, Any] = {}
    out: dict[str, Any] = {}
    metrics = observability.metrics
    if metrics is not None:
        telemetry["metrics"] = {"prometheus": {"disable": not metrics.enabled}}
        if metrics.enabled and metrics.port != ENVOY_METRICS_PORT:
            notes.append(
                findings.finding(
                    category=findings.Category.NOT_ENFORCED,
                    field="spec.observability.metrics.port",
                    message=f"{metrics.port}: Envoy Gateway serves proxy metrics on "
                    f"{ENVOY_METRICS_PORT} (/stats/prometheus); the port is not configurable",
                )
            )
    tracing = observability.tracing
    if tracing is not None and tracing.enabled:
        if tracing.jaeger_endpoint:
            provider, provider_notes = _tracing_provider(tracing.jaeger_endpoint)
            notes += provider_notes
            if provider is not None:
                telemetry["tracing"] = {
                    "samplingRate": round(tracing.sampling_rate * 100),
                    "provider": provider,
                }
        else:
            notes.append(
                findings.finding(
                    category=findings.Category.NOT_ENFORCED,
                    field="spec.observability.tracing.jaegerEndpoint",
                    message="tracing is enabled but no collector endpoint is given",
                )
            )
    logging = observability.logging
    if logging is not None:
        level = "warn" if logging.level == "warning" else logging.level
        out["logging"] = {"level": {"default": level}}
        if logging.access_logs:
            telemetry["accessLog"] = {
                "settings": [
                    {
                        # Envoy Gateway requires `text` with type Text (CEL rule of the CRD).
                        "format": {"type": "Text", "text": ACCESS_LOG_FORMAT},
                        "sinks": [{"type": "File", "file": {"path": "/dev/stdout"}}],
                    }
                ]
            }
        else:
            telemetry["accessLog"] = {"disable": True}
    if telemetry:
        out["telemetry"] = telemetry
    return out, notes


def _tracing_provider(endpoint: str) -> tuple[dict[str, Any] | None, list[findings.Finding]]:
    field = "spec.observability.tracing.jaegerEndpoint"
    parsed = urllib.parse.urlsplit(endpoint)
    try:
        port = parsed.port
    except ValueError:
        port = None
    if not parsed.hostname:
        return None, [
            findings.finding(
                category=findings.Category.INVALID,
                field=field,
                message=f"{endpoint!r} is not a URL with a host",
            )
        ]
    notes: list[findings.Finding] = []
    if port is None or port == _JAEGER_THRIFT_PORT:
        notes.append(
            findings.finding(
                category=findings.Category.NOT_ENFORCED,
                field=field,
                message=f"{endpoint}: Envoy cannot send Jaeger Thrift; traces go over OTLP to "
                f"{parsed.hostname}:{_OTLP_GRPC_PORT} (the Jaeger collector's OTLP port)",
            )
        )
        port = _OTLP_GRPC_PORT
    return {"type": "OpenTelemetry", "host": parsed.hostname, "port": port}, notes


def security_findings(gateway: tailscalegateway.TailscaleGateway) -> list[findings.Finding]:
    """What of spec.security and spec.serviceCoordination tailwire cannot enforce."""
    notes: list[findings.Finding] = []
    security = gateway.spec.security
    if security is not None:
        access = security.access_control
        if access is not None and (access.allowed_tags or access.denied_tags):
            tags = [*access.allowed_tags, *access.denied_tags]
            malformed = [tag for tag in tags if not tag.startswith("tag:")]
            message = (
                "not enforced by tailwire: Envoy does not see the tailnet identity of a client "
                "(the Tailscale proxy forwards the connection); enforce it with a tailnet "
                "policy grant from the allowed tags to the gateway's device (docs/ingress.md)"
            )
            if malformed:
                message += f"; {', '.join(sorted(malformed))} are not Tailscale tags (tag:<name>)"
            notes.append(
                findings.finding(
                    category=findings.Category.NOT_ENFORCED,
                    field="spec.security.accessControl",
                    message=message,
                )
            )
    coordination = gateway.spec.service_coordination
    if coordination is not None and coordination.enabled:
        notes.append(
            findings.finding(
                category=findings.Category.NOT_ENFORCED,
                field="spec.serviceCoordination",
                message=f"{coordination.strategy}: cross-cluster coordination is not "
                "implemented; this cluster renders its own routes only",
            )
        )
    return notes


def mtls_objects(
    gateway: tailscalegateway.TailscaleGateway, *, gateway_namespace: str, gateway_name: str
) -> tuple[list[dict[str, Any]], list[findings.Finding]]:
    """spec.security.mtls -> an Envoy Gateway ClientTrafficPolicy on the Gateway that makes
    clients present a certificate signed by the CA in `certificateRef` (Envoy Gateway reads
    the key `ca.crt`), plus a ReferenceGrant when that Secret lives in another namespace."""
    security = gateway.spec.security
    mtls = security.mtls if security is not None else None
    if security is None or mtls is None or not mtls.enabled or mtls.certificate_ref is None:
        return [], []
    notes: list[findings.Finding] = []
    if security.tls_mode == "disabled":
        return [], [
            findings.finding(
                category=findings.Category.NOT_ENFORCED,
                field="spec.security.mtls",
                message="tlsMode is disabled: there is no TLS listener to validate clients on",
            )
        ]
    ref = mtls.certificate_ref
    if ref.key is not None and ref.key != "ca.crt":
        notes.append(
            findings.finding(
                category=findings.Category.NOT_ENFORCED,
                field="spec.security.mtls.certificateRef.key",
                message=f"{ref.key}: Envoy Gateway reads the CA certificate from the key ca.crt",
            )
        )
    secret_namespace = ref.namespace or gateway_namespace
    owner = naming.owner_labels(gateway, component=naming.COMPONENT_POLICY)
    name = naming.short(f"{gateway.metadata.name}-mtls")
    ca_ref: dict[str, Any] = {"group": "", "kind": "Secret", "name": ref.name}
    if secret_namespace != gateway_namespace:
        ca_ref["namespace"] = secret_namespace
    out: list[dict[str, Any]] = [
        {
            "apiVersion": naming.ENVOY_API,
            "kind": "ClientTrafficPolicy",
            "metadata": {"name": name, "namespace": gateway_namespace, "labels": owner},
            "spec": {
                "targetRefs": [
                    {"group": naming.GATEWAY_GROUP, "kind": "Gateway", "name": gateway_name}
                ],
                "tls": {"clientValidation": {"caCertificateRefs": [ca_ref]}},
            },
        }
    ]
    if secret_namespace != gateway_namespace:
        out.append(
            {
                "apiVersion": naming.REFERENCE_GRANT_API,
                "kind": "ReferenceGrant",
                "metadata": {
                    "name": naming.short(f"{gateway.metadata.name}-{gateway_namespace}-mtls"),
                    "namespace": secret_namespace,
                    "labels": dict(owner),
                },
                "spec": {
                    "from": [
                        {
                            "group": naming.ENVOY_GROUP,
                            "kind": "ClientTrafficPolicy",
                            "namespace": gateway_namespace,
                        }
                    ],
                    "to": [{"group": "", "kind": "Secret", "name": ref.name}],
                },
            }
        )
    return out, notes
