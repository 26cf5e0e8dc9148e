"""`TailscaleGateway` (gateway.tailscale.com/v1alpha1, namespaced): every field of the seed
API reference, implemented rather than merely accepted. Validation names the field."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from tailwire.shared import errors
from tailwire.shared.resources import common, templates

GROUP = "gateway.tailscale.com"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "TailscaleGateway"
PLURAL = "tailscalegateways"
SINGULAR = "tailscalegateway"
SHORT_NAMES = ("tsgw",)
SCOPE = "Namespaced"

# Gateway API's Duration: 1 to 4 groups of up to 5 digits and a unit.
_DURATION = re.compile(r"^([0-9]{1,5}(h|m|s|ms)){1,4}$")


def _duration(value: str) -> str:
    if not _DURATION.match(value):
        raise ValueError(f"{value!r} is not a duration like 30s, 1m or 500ms")
    return value


def _host_template(value: str) -> str:
    value = templates.normalize(value)
    problem = templates.check_host_template(value)
    if problem:
        raise ValueError(f"{value!r} {problem}" if problem.startswith("does") else problem)
    return value


def _path_template(value: str) -> str:
    value = templates.normalize(value)
    problem = templates.check_path_template(value)
    if problem:
        raise ValueError(problem)
    return value


Duration = Annotated[str, pydantic.AfterValidator(_duration)]
HostTemplate = Annotated[str, pydantic.AfterValidator(_host_template)]
PathTemplate = Annotated[str, pydantic.AfterValidator(_path_template)]


class HeaderValue(common.Spec):
    name: str = Field(min_length=1)
    value: str


class HeaderModifier(common.Spec):
    set: list[HeaderValue] = Field(default_factory=list)
    add: list[HeaderValue] = Field(default_factory=list)
    remove: list[str] = Field(default_factory=list)


class HTTPRouteFilter(common.Spec):
    """A Gateway API HTTPRouteFilter; the less common filter bodies pass through as given."""

    type: Literal[
        "RequestHeaderModifier",
        "ResponseHeaderModifier",
        "RequestMirror",
        "RequestRedirect",
        "URLRewrite",
        "ExtensionRef",
    ]
    request_header_modifier: HeaderModifier | None = None
    response_header_modifier: HeaderModifier | None = None
    request_mirror: dict[str, Any] | None = None
    request_redirect: dict[str, Any] | None = None
    url_rewrite: dict[str, Any] | None = Field(default=None, alias="urlRewrite")
    extension_ref: dict[str, Any] | None = None

    @pydantic.model_validator(mode="after")
    def _body_matches_type(self) -> HTTPRouteFilter:
        body_field = {
            "RequestHeaderModifier": "request_header_modifier",
            "ResponseHeaderModifier": "response_header_modifier",
            "RequestMirror": "request_mirror",
            "RequestRedirect": "request_redirect",
            "URLRewrite": "url_rewrite",
            "ExtensionRef": "extension_ref",
        }[self.type]
        if getattr(self, body_field) is None:
            alias = type(self).model_fields[body_field].alias or body_field
            raise ValueError(f"type {self.type} needs the field {alias}")
        return self


class HealthCheck(common.Spec):
    enabled: bool = False
    interval: Duration = "30s"
    timeout: Duration = "5s"
    healthy_threshold: int = Field(default=2, ge=1)
    unhealthy_threshold: int = Field(default=3, ge=1)


class BackendConfig(common.Spec):
    weight: int = Field(default=1, ge=0, le=1_000_000)
    health_check: HealthCheck | None = None


class ParentReference(common.Spec):
    """One more Gateway a generated route attaches to (the multi-gateway pattern of
    three-gateway-architecture.md: the LAN gateway beside the tailscale one)."""

    group: str = "gateway.networking.k8s.io"
    kind: str = "Gateway"
    name: str = Field(min_length=1)
    namespace: str | None = None
    section_name: str | None = None


class IngressRouteConfig(common.Spec):
    enabled: bool = False
    host_pattern: HostTemplate | None = None
    path_prefix: PathTemplate = "/"
    default_backend: BackendConfig | None = None
    filters: list[HTTPRouteFilter] = Field(default_factory=list)
    # tailwire additions (not in the seed reference), all optional:
    # Which Services get a route. Default: every Service in `namespaces` with a port named
    # http or https; with a selector, the Services whose labels match it.
    service_selector: common.LabelSelector | None = None
    # Namespaces to look for Services in; empty means the TailscaleGateway's own namespace.
    namespaces: list[str] = Field(default_factory=list)
    # Gateways the routes attach to besides spec.gatewayRef.
    additional_parent_refs: list[ParentReference] = Field(default_factory=list)


class RewriteRule(common.Spec):
    from_: PathTemplate = Field(alias="from")
    to: PathTemplate


class RetryPolicy(common.Spec):
    num_retries: int = Field(default=1, ge=0, le=100)
    per_try_timeout: Duration | None = None
    backoff_base_interval: Duration | None = None
    backoff_max_interval: Duration | None = None


class EgressRouteConfig(common.Spec):
    enabled: bool = False
    host_pattern: HostTemplate | None = None
    path_prefix: PathTemplate | None = None
    rewrite_rules: list[RewriteRule] = Field(default_factory=list)
    timeout: Duration | None = None
    retry_policy: RetryPolicy | None = None


class RouteGenerationConfig(common.Spec):
    ingress: IngressRouteConfig | None = None
    egress: EgressRouteConfig | None = None


class TailnetConfiguration(common.Spec):
    name: str = Field(min_length=1, max_length=63)
    tailscale_tailnet_ref: common.LocalPolicyTargetReference
    route_generation: RouteGenerationConfig | None = None
    priority: int = Field(default=100, ge=-(2**31), le=2**31 - 1)


class ServiceCoordinationConfig(common.Spec):
    enabled: bool = False
    strategy: Literal["shared", "isolated", "primary"] = "shared"


class CircuitBreaker(common.Spec):
    enabled: bool = False
    max_connections: int | None = Field(default=None, ge=1)
    max_pending_requests: int | None = Field(default=None, ge=1)
    max_requests: int | None = Field(default=None, ge=1)
    max_retries: int | None = Field(default=None, ge=0)
    consecutive_errors: int | None = Field(default=None, ge=1)
    interval: Duration | None = None
    base_ejection_time: Duration | None = None
    max_ejection_percent: int | None = Field(default=None, ge=0, le=100)


class LoadBalancingConfig(common.Spec):
    strategy: Literal["round_robin", "least_request", "random", "ring_hash", "consistent_hash"] = (
        "round_robin"
    )
    health_checking: HealthCheck | None = None
    circuit_breaker: CircuitBreaker | None = None


class MTLS(common.Spec):
    enabled: bool = False
    certificate_ref: common.SecretKeyRef | None = None


class AccessControl(common.Spec):
    allowed_tags: list[str] = Field(default_factory=list)
    denied_tags: list[str] = Field(default_factory=list)


class SecurityConfig(common.Spec):
    tls_mode: Literal["strict", "permissive", "disabled"] = "strict"
    mtls: MTLS | None = None
    access_control: AccessControl | None = None


class MetricsConfig(common.Spec):
    enabled: bool = False
    port: int = Field(default=9090, ge=1, le=65535)


class TracingConfig(common.Spec):
    enabled: bool = False
    sampling_rate: float = Field(default=1.0, ge=0.0, le=1.0)
    jaeger_endpoint: str | None = None


class LoggingConfig(common.Spec):
    level: Literal["debug", "info", "warn", "warning", "error"] = "info"
    access_logs: bool = False


class ObservabilityConfig(common.Spec):
    metrics: MetricsConfig | None = None
    tracing: TracingConfig | None = None
    logging: LoggingConfig | None = None


class StackManagement(common.Spec):
    """Which objects of the Gateway stack tailwire creates and owns. An object that is not
    managed is referenced by name and must exist; tailwire never overwrites it."""

    gateway_class: bool = True
    envoy_proxy: bool = True
    gateway: bool = True
    certificate: bool = True
    internal_service: bool = True


class IssuerRef(common.Spec):
    """The cert-manager issuer of the wildcard certificate."""

    name: str = Field(min_length=1)
    kind: Literal["Issuer", "ClusterIssuer"] = "ClusterIssuer"
    group: str = "cert-manager.io"


class StackConfig(common.Spec):
    """The Envoy Gateway + Tailscale LoadBalancer stack (seeds/homelab-gateway-api-tailscale.txt)
    behind spec.gatewayRef. Without spec.stack, tailwire manages no part of it."""

    manage: StackManagement = Field(default_factory=StackManagement)
    gateway_class_name: str = Field(default="tailscale", min_length=1, max_length=253)
    controller_name: str = "gateway.envoyproxy.io/gatewayclass-controller"
    # The EnvoyProxy the GatewayClass points at; default `<gatewayClassName>-proxy`.
    envoy_proxy_name: str | None = None
    # The tailnet device name of the Envoy LoadBalancer Service; default the Gateway's name.
    tailscale_hostname: str | None = Field(default=None, max_length=63)
    # `example.com`: the HTTPS listener serves `*.example.com` with the wildcard certificate.
    wildcard_domain: str | None = None
    issuer_ref: IssuerRef | None = None
    # The Secret the certificate is stored in; default `<gateway>-wildcard-tls`.
    certificate_secret_name: str | None = None
    # Where Envoy Gateway runs the Envoy pods (its controller namespace): the internal
    # Service must live beside them.
    envoy_namespace: str = "envoy-gateway-system"
    internal_service_name: str = "gateway-internal"
    envoy_replicas: int | None = Field(default=None, ge=1, le=100)


class TailscaleGatewaySpec(common.Spec):
    gateway_ref: common.LocalPolicyTargetReference
    tailnets: list[TailnetConfiguration] = Field(min_length=1)
    service_coordination: ServiceCoordinationConfig | None = None
    load_balancing: LoadBalancingConfig | None = None
    security: SecurityConfig | None = None
    observability: ObservabilityConfig | None = None
    # tailwire addition: which parts of the Gateway stack tailwire manages (None: none).
    stack: StackConfig | None = None


class TailnetStatus(common.Spec):
    name: str
    status: str
    last_connected: str | None = None
    services_count: int = 0
    routes_generated: int = 0


class ServiceInfo(common.Spec):
    total_services: int = 0
    healthy_services: int = 0
    unhealthy_services: int = 0


class GatewayInfo(common.Spec):
    listener_count: int = 0
    route_count: int = 0
    last_reconciled: str | None = None


class TailscaleGatewayStatus(common.Spec):
    conditions: list[common.Condition] = Field(default_factory=list)
    tailnets: list[TailnetStatus] = Field(default_factory=list)
    service_info: ServiceInfo | None = None
    gateway_info: GatewayInfo | None = None
    observed_generation: int | None = None


class TailscaleGateway(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid", frozen=True)

    api_version: Literal["gateway.tailscale.com/v1alpha1"] = Field(alias="apiVersion")
    kind: Literal["TailscaleGateway"]
    metadata: common.ObjectMeta
    spec: TailscaleGatewaySpec
    status: TailscaleGatewayStatus | None = None


def check(gateway: TailscaleGateway) -> list[errors.Problem]:
    """Rules across fields, which pydantic's per-field validation cannot see."""
    problems: list[errors.Problem] = []
    spec = gateway.spec
    if spec.gateway_ref.kind != "Gateway":
        problems.append(
            errors.Problem(
                field="spec.gatewayRef.kind",
                message=f"must be Gateway, not {spec.gateway_ref.kind!r}",
            )
        )
    seen: dict[str, int] = {}
    for index, tailnet in enumerate(spec.tailnets):
        where = f"spec.tailnets[{index}]"
        if tailnet.name in seen:
            problems.append(
                errors.Problem(
                    field=f"{where}.name",
                    message=f"duplicate tailnet name {tailnet.name!r}"
                    f" (also spec.tailnets[{seen[tailnet.name]}])",
                )
            )
        seen.setdefault(tailnet.name, index)
        if tailnet.tailscale_tailnet_ref.kind != "TailscaleTailnet":
            problems.append(
                errors.Problem(
                    field=f"{where}.tailscaleTailnetRef.kind",
                    message=f"must be TailscaleTailnet, not {tailnet.tailscale_tailnet_ref.kind!r}",
                )
            )
        generation = tailnet.route_generation
        for direction, config in (
            ("ingress", generation.ingress if generation else None),
            ("egress", generation.egress if generation else None),
        ):
            if config is not None and config.enabled and not config.host_pattern:
                problems.append(
                    errors.Problem(
                        field=f"{where}.routeGeneration.{direction}.hostPattern",
                        message="required when route generation is enabled",
                    )
                )
    problems += _check_stack(spec.stack)
    mtls = spec.security.mtls if spec.security else None
    if mtls is not None and mtls.enabled and mtls.certificate_ref is None:
        problems.append(
            errors.Problem(
                field="spec.security.mtls.certificateRef",
                message="required when mtls is enabled (the CA that signs client certificates)",
            )
        )
    return problems


def _check_stack(stack: StackConfig | None) -> list[errors.Problem]:
    if stack is None:
        return []
    problems: list[errors.Problem] = []
    for field, value in (
        ("spec.stack.wildcardDomain", stack.wildcard_domain),
        ("spec.stack.tailscaleHostname", stack.tailscale_hostname),
    ):
        if value is not None and not common.DNS_SUBDOMAIN.match(value):
            problems.append(errors.Problem(field=field, message=f"{value!r} is not a DNS name"))
    if (stack.manage.certificate or stack.manage.gateway) and not stack.wildcard_domain:
        problems.append(
            errors.Problem(
                field="spec.stack.wildcardDomain",
                message="required when tailwire manages the Gateway or the Certificate",
            )
        )
    if stack.manage.certificate and stack.issuer_ref is None:
        problems.append(
            errors.Problem(
                field="spec.stack.issuerRef",
                message="required when tailwire manages the Certificate",
            )
        )
    return problems
