"""The Gateway stack behind a TailscaleGateway (seeds/homelab-gateway-api-tailscale.txt):
GatewayClass -> EnvoyProxy (Envoy Service of type LoadBalancer, `loadBalancerClass:
tailscale`, a stable `tailscale.com/hostname`) -> Gateway (HTTPS listener for the wildcard
host) <- cert-manager Certificate, plus the `gateway-internal` Service that selects the Envoy
pods for in-cluster clients.

`spec.stack.manage` says which of these tailwire creates; the others are referenced by name.
An existing Gateway or Service that tailwire does not own is referenced and reported, never
overwritten. Pure: returns manifests and findings, does no I/O.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pydantic

from tailwire.services.renderer.ingress import findings, inputs, naming, policies
from tailwire.shared.k8s import labels
from tailwire.shared.resources import tailscalegateway, tailscaletailnet

Manifest = dict[str, Any]
HTTPS_LISTENER = "https"
HTTP_LISTENER = "http"


@dataclasses.dataclass(frozen=True, kw_only=True)
class Target:
    """The Gateway generated routes attach to, and which of its listeners they use."""

    namespace: str
    name: str
    managed: bool
    ingress_section: str | None = None
    egress_section: str | None = None
    listener_count: int = 0
    exists: bool = True
    # The Gateway's `Programmed` condition as last mirrored (None: unknown or not yet reported).
    programmed: bool | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class Stack:
    manifests: tuple[Manifest, ...]
    findings: tuple[findings.Finding, ...]
    target: Target


def gateway_namespace(gateway: tailscalegateway.TailscaleGateway) -> str:
    return gateway.spec.gateway_ref.namespace or naming.namespace_of(gateway)


def render_stack(
    gateway: tailscalegateway.TailscaleGateway, *, snapshots: inputs.Snapshots
) -> Stack:
    ref = gateway.spec.gateway_ref
    namespace = gateway_namespace(gateway)
    existing = snapshots.gateway(namespace=namespace, name=ref.name)
    stack = gateway.spec.stack
    notes: list[findings.Finding] = []
    if stack is None:
        return _unmanaged(gateway, namespace=namespace, existing=existing)

    out: list[Manifest] = []
    meta = _meta_factory(gateway)
    proxy_name = stack.envoy_proxy_name or f"{stack.gateway_class_name}-proxy"
    if stack.manage.gateway_class:
        out.append(
            {
                "apiVersion": naming.GATEWAY_API,
                "kind": "GatewayClass",
                "metadata": meta(name=stack.gateway_class_name, namespace=None),
                "spec": {
                    "controllerName": stack.controller_name,
                    "parametersRef": {
                        "group": naming.ENVOY_GROUP,
                        "kind": "EnvoyProxy",
                        "name": proxy_name,
                        "namespace": namespace,
                    },
                },
            }
        )
    if stack.manage.envoy_proxy:
        telemetry, telemetry_notes = policies.envoy_telemetry(gateway.spec.observability)
        notes += telemetry_notes
        out.append(
            {
                "apiVersion": naming.ENVOY_API,
                "kind": "EnvoyProxy",
                "metadata": meta(name=proxy_name, namespace=namespace),
                "spec": {
                    **_envoy_provider(gateway, stack=stack, snapshots=snapshots),
                    **telemetry,
                },
            }
        )
    elif gateway.spec.observability is not None:
        notes.append(
            findings.finding(
                category=findings.Category.NOT_ENFORCED,
                field="spec.observability",
                message=f"the EnvoyProxy {namespace}/{proxy_name} is not managed by tailwire "
                "(spec.stack.manage.envoyProxy is false); set its telemetry there",
            )
        )

    listeners = _listeners(gateway, stack=stack)
    manage_gateway = stack.manage.gateway
    if manage_gateway and existing is not None and not _ours(existing.meta.labels):
        manage_gateway = False
        notes.append(
            findings.finding(
                category=findings.Category.REFERENCED,
                field="spec.stack.manage.gateway",
                message=f"Gateway {namespace}/{ref.name} exists and is not tailwire's; "
                "it is referenced, not overwritten",
            )
        )
    if manage_gateway:
        out.append(
            {
                "apiVersion": naming.GATEWAY_API,
                "kind": "Gateway",
                "metadata": meta(name=ref.name, namespace=namespace),
                "spec": {"gatewayClassName": stack.gateway_class_name, "listeners": listeners},
            }
        )
    if stack.manage.certificate and stack.wildcard_domain and stack.issuer_ref:
        out.append(
            {
                "apiVersion": naming.CERT_MANAGER_API,
                "kind": "Certificate",
                "metadata": meta(name=_certificate_name(gateway), namespace=namespace),
                "spec": {
                    "secretName": _secret_name(gateway),
                    "dnsNames": [f"*.{stack.wildcard_domain}"],
                    "issuerRef": stack.issuer_ref.dump(),
                },
            }
        )
    if stack.manage.internal_service:
        internal, internal_notes = _internal_service(
            gateway, stack=stack, listeners=listeners, snapshots=snapshots
        )
        out += internal
        notes += internal_notes

    names = {listener["name"] for listener in listeners}
    if manage_gateway:
        target = Target(
            namespace=namespace,
            name=ref.name,
            managed=True,
            ingress_section=HTTPS_LISTENER if HTTPS_LISTENER in names else HTTP_LISTENER,
            egress_section=HTTP_LISTENER if HTTP_LISTENER in names else None,
            listener_count=len(listeners),
            programmed=existing.programmed if existing is not None else None,
            exists=existing is not None,
        )
    else:
        target = _target_of(namespace=namespace, name=ref.name, existing=existing)
        notes += _missing(target, gateway=gateway)
    return Stack(manifests=tuple(out), findings=tuple(notes), target=target)


def _unmanaged(
    gateway: tailscalegateway.TailscaleGateway,
    *,
    namespace: str,
    existing: Any,
) -> Stack:
    target = _target_of(namespace=namespace, name=gateway.spec.gateway_ref.name, existing=existing)
    notes = list(_missing(target, gateway=gateway))
    if gateway.spec.observability is not None:
        notes.append(
            findings.finding(
                category=findings.Category.NOT_ENFORCED,
                field="spec.observability",
                message="tailwire manages no EnvoyProxy for this gateway (no spec.stack); "
                "set telemetry on the EnvoyProxy of its GatewayClass",
            )
        )
    security = gateway.spec.security
    if security is not None and security.tls_mode != "strict":
        notes.append(
            findings.finding(
                category=findings.Category.NOT_ENFORCED,
                field="spec.security.tlsMode",
                message=f"{security.tls_mode}: the listeners of a Gateway tailwire does not "
                "manage are the user's",
            )
        )
    return Stack(manifests=(), findings=tuple(notes), target=target)


def _target_of(*, namespace: str, name: str, existing: Any) -> Target:
    if existing is None:
        return Target(namespace=namespace, name=name, managed=False, exists=False)
    return Target(
        namespace=namespace,
        name=name,
        managed=_ours(existing.meta.labels),
        listener_count=len(existing.listeners),
        programmed=existing.programmed,
    )


def _missing(
    target: Target, *, gateway: tailscalegateway.TailscaleGateway
) -> tuple[findings.Finding, ...]:
    if target.exists:
        return ()
    return (
        findings.finding(
            category=findings.Category.MISSING,
            field="spec.gatewayRef",
            message=f"Gateway {target.namespace}/{target.name} not found"
            + ("" if gateway.spec.stack else " (tailwire manages no stack: spec.stack is unset)"),
        ),
    )


def _ours(object_labels: dict[str, str]) -> bool:
    return object_labels.get(labels.MANAGED_BY) == labels.MANAGED_BY_VALUE


class _Meta:
    def __init__(self, gateway: tailscalegateway.TailscaleGateway) -> None:
        self._labels = naming.owner_labels(gateway, component=naming.COMPONENT_STACK)

    def __call__(self, *, name: str, namespace: str | None) -> dict[str, Any]:
        meta: dict[str, Any] = {"name": name}
        if namespace is not None:
            meta["namespace"] = namespace
        meta["labels"] = dict(self._labels)
        return meta


def _meta_factory(gateway: tailscalegateway.TailscaleGateway) -> _Meta:
    return _Meta(gateway)


def device_tags(
    gateway: tailscalegateway.TailscaleGateway, *, snapshots: inputs.Snapshots
) -> list[str]:
    """The tags of the Envoy Service's tailnet device: those of the highest-priority tailnet
    whose TailscaleTailnet is known (the Tailscale operator puts the device on one tailnet)."""
    ranked = sorted(enumerate(gateway.spec.tailnets), key=lambda it: (-it[1].priority, it[0]))
    for _, tailnet in ranked:
        snapshot = snapshots.tailnet(tailnet.tailscale_tailnet_ref.name)
        if snapshot is None:
            continue
        try:
            return list(tailscaletailnet.TailscaleTailnetSpec.model_validate(snapshot.spec).tags)
        except pydantic.ValidationError:
            continue
    return []


def _envoy_provider(
    gateway: tailscalegateway.TailscaleGateway,
    *,
    stack: tailscalegateway.StackConfig,
    snapshots: inputs.Snapshots,
) -> dict[str, Any]:
    hostname = stack.tailscale_hostname or naming.short(gateway.spec.gateway_ref.name)
    annotations = {labels.TAILSCALE_HOSTNAME: hostname}
    tags = device_tags(gateway, snapshots=snapshots)
    if tags:
        annotations[naming.TAILSCALE_TAGS] = ",".join(tags)
    kubernetes: dict[str, Any] = {
        "envoyService": {
            "type": "LoadBalancer",
            "loadBalancerClass": labels.TAILSCALE_LOAD_BALANCER_CLASS,
            "annotations": annotations,
        }
    }
    if stack.envoy_replicas is not None:
        kubernetes["envoyDeployment"] = {"replicas": stack.envoy_replicas}
    return {"provider": {"type": "Kubernetes", "kubernetes": kubernetes}}


def _listeners(
    gateway: tailscalegateway.TailscaleGateway, *, stack: tailscalegateway.StackConfig
) -> list[dict[str, Any]]:
    """HTTPS for the wildcard host unless tlsMode is disabled; plain HTTP when tlsMode allows
    it or when egress routes need an in-cluster listener."""
    tls_mode = gateway.spec.security.tls_mode if gateway.spec.security else "strict"
    egress = any(
        t.route_generation is not None
        and t.route_generation.egress is not None
        and t.route_generation.egress.enabled
        for t in gateway.spec.tailnets
    )
    allowed = {"namespaces": {"from": "All"}}
    listeners: list[dict[str, Any]] = []
    if tls_mode != "disabled":
        https: dict[str, Any] = {"name": HTTPS_LISTENER, "protocol": "HTTPS", "port": 443}
        if stack.wildcard_domain:
            https["hostname"] = f"*.{stack.wildcard_domain}"
        https["tls"] = {
            "mode": "Terminate",
            "certificateRefs": [{"group": "", "kind": "Secret", "name": _secret_name(gateway)}],
        }
        https["allowedRoutes"] = allowed
        listeners.append(https)
    if tls_mode != "strict" or egress:
        listeners.append(
            {"name": HTTP_LISTENER, "protocol": "HTTP", "port": 80, "allowedRoutes": allowed}
        )
    return listeners


def _internal_service(
    gateway: tailscalegateway.TailscaleGateway,
    *,
    stack: tailscalegateway.StackConfig,
    listeners: list[dict[str, Any]],
    snapshots: inputs.Snapshots,
) -> tuple[list[Manifest], list[findings.Finding]]:
    namespace = stack.envoy_namespace
    existing = snapshots.service(namespace=namespace, name=stack.internal_service_name)
    if existing is not None and not _ours(existing.meta.labels):
        return [], [
            findings.finding(
                category=findings.Category.REFERENCED,
                field="spec.stack.manage.internalService",
                message=f"Service {namespace}/{stack.internal_service_name} exists and is not "
                "tailwire's; it is referenced, not overwritten",
            )
        ]
    # Envoy Gateway maps a privileged listener port p to container port p + 10000.
    ports = [
        {
            "name": listener["name"],
            "port": listener["port"],
            "protocol": "TCP",
            "targetPort": listener["port"] + 10000 if listener["port"] < 1024 else listener["port"],
        }
        for listener in listeners
    ]
    return [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _meta_factory(gateway)(
                name=stack.internal_service_name, namespace=namespace
            ),
            "spec": {
                "type": "ClusterIP",
                "selector": {
                    naming.OWNING_GATEWAY_NAME: gateway.spec.gateway_ref.name,
                    naming.OWNING_GATEWAY_NAMESPACE: gateway_namespace(gateway),
                },
                "ports": ports,
            },
        }
    ], []


def _secret_name(gateway: tailscalegateway.TailscaleGateway) -> str:
    stack = gateway.spec.stack
    if stack is not None and stack.certificate_secret_name:
        return stack.certificate_secret_name
    return naming.short(f"{gateway.spec.gateway_ref.name}-wildcard-tls", limit=253)


def _certificate_name(gateway: tailscalegateway.TailscaleGateway) -> str:
    return naming.short(f"{gateway.spec.gateway_ref.name}-wildcard")
