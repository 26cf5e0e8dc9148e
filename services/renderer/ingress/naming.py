"""Names, labels and API versions of the objects the ingress side generates.

Every generated object carries the managed-by labels and owner labels naming its
TailscaleGateway, so pruning only ever touches what that resource owns. Names are derived
deterministically from the owner, never random. No I/O.
"""

from __future__ import annotations

import hashlib

from tailwire.shared.k8s import labels
from tailwire.shared.resources import tailscalegateway

GATEWAY_API = "gateway.networking.k8s.io/v1"
GATEWAY_GROUP = "gateway.networking.k8s.io"
# ReferenceGrant is served as v1beta1 by every standard-channel Gateway API release.
REFERENCE_GRANT_API = "gateway.networking.k8s.io/v1beta1"
ENVOY_API = "gateway.envoyproxy.io/v1alpha1"
ENVOY_GROUP = "gateway.envoyproxy.io"
CERT_MANAGER_API = "cert-manager.io/v1"

# Labels Envoy Gateway puts on the Envoy pods of a Gateway (the internal Service selects them).
OWNING_GATEWAY_NAME = "gateway.envoyproxy.io/owning-gateway-name"
OWNING_GATEWAY_NAMESPACE = "gateway.envoyproxy.io/owning-gateway-namespace"
# The Tailscale operator tags a LoadBalancer Service's device with these (comma-separated).
TAILSCALE_TAGS = "tailscale.com/tags"
# Tailscale operator egress Services name their tailnet target with one of these.
TAILNET_FQDN = "tailscale.com/tailnet-fqdn"
TAILNET_IP = "tailscale.com/tailnet-ip"
# Which generated route a Service's route is (for readers; pruning uses the owner labels).
SERVICE = f"{labels.DOMAIN}/service"

COMPONENT_STACK = "gateway-stack"
COMPONENT_INGRESS = "ingress-route"
COMPONENT_EGRESS = "egress-route"
COMPONENT_POLICY = "traffic-policy"

MAX_NAME = 63


def short(value: str, *, limit: int = MAX_NAME) -> str:
    """`value` if it fits, else a prefix plus a stable hash, so names stay DNS-valid."""
    if len(value) <= limit:
        return value
    digest = hashlib.sha256(value.encode()).hexdigest()[:8]
    return f"{value[: limit - 9].rstrip('-.')}-{digest}"


def namespace_of(gateway: tailscalegateway.TailscaleGateway) -> str:
    return gateway.metadata.namespace or "default"


def owner_labels(gateway: tailscalegateway.TailscaleGateway, *, component: str) -> dict[str, str]:
    """Managed-by plus owner labels (owner references cannot cross namespaces or scopes)."""
    return {
        **labels.managed(component=component),
        labels.OWNER_KIND: tailscalegateway.KIND,
        labels.OWNER_NAME: short(gateway.metadata.name),
        labels.OWNER_NAMESPACE: namespace_of(gateway),
    }


def is_owned_by(
    object_labels: dict[str, str], *, gateway: tailscalegateway.TailscaleGateway
) -> bool:
    return (
        object_labels.get(labels.MANAGED_BY) == labels.MANAGED_BY_VALUE
        and object_labels.get(labels.OWNER_KIND) == tailscalegateway.KIND
        and object_labels.get(labels.OWNER_NAME) == short(gateway.metadata.name)
        and object_labels.get(labels.OWNER_NAMESPACE) == namespace_of(gateway)
    )


def owner_key(object_labels: dict[str, str]) -> tuple[str, str] | None:
    """(namespace, name) of the TailscaleGateway owning an object, if tailwire made it."""
    if object_labels.get(labels.MANAGED_BY) != labels.MANAGED_BY_VALUE:
        return None
    if object_labels.get(labels.OWNER_KIND) != tailscalegateway.KIND:
        return None
    return (object_labels.get(labels.OWNER_NAMESPACE, ""), object_labels.get(labels.OWNER_NAME, ""))


def route_name(*, gateway: str, tailnet: str, service: str, direction: str) -> str:
    suffix = "" if direction == "ingress" else "-egress"
    return short(f"{gateway}-{tailnet}-{service}{suffix}")
