"""`EgressGroup` (tailscale.rajsingh.info/v1alpha1, cluster-scoped, short name `eg`).

The fields of the tailgate README (selector, mode, routes, acceptRoutes, exitNode, replicas,
attach, datapath) plus `tags`, `dns`, `gateway` (where and how the gateway pods run:
nodeSelector, tolerations, resources, priorityClassName, labels, annotations, image) and
`tailnet` (a TailscaleTailnet to join instead of the default one). Validation names the
field.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from tailwire.shared import errors
from tailwire.shared.resources import common

GROUP = "tailscale.rajsingh.info"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "EgressGroup"
PLURAL = "egressgroups"
SINGULAR = "egressgroup"
SHORT_NAMES = ("eg",)
SCOPE = "Cluster"

TAG = re.compile(r"^tag:[a-zA-Z][a-zA-Z0-9-]*$")
DEFAULT_TAGS = ("tag:k8s",)


def parse_cidr(value: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """A strict network, with a message that says what is wrong with it."""
    address, _, prefix = value.partition("/")
    try:
        family_max = 32 if ipaddress.ip_address(address).version == 4 else 128
    except ValueError:
        raise ValueError(f"{value!r} is not a CIDR: {address!r} is not an IP address") from None
    if not prefix.isdigit():
        raise ValueError(f"{value!r} is not a CIDR: expected <address>/<prefix length>")
    if int(prefix) > family_max:
        raise ValueError(f"{value!r} has prefix length /{prefix}; at most /{family_max}")
    try:
        return ipaddress.ip_network(value, strict=True)
    except ValueError:
        loose = ipaddress.ip_network(value, strict=False)
        raise ValueError(f"{value!r} has host bits set (did you mean {loose}?)") from None


def _route(value: str) -> str:
    network = parse_cidr(value)
    if network.prefixlen == 0:
        raise ValueError(f"{value!r} is a default route; use spec.exitNode instead")
    return value


def _tag(value: str) -> str:
    if not TAG.match(value):
        raise ValueError(f"{value!r} is not a tag (expected tag:<name>)")
    return value


Route = Annotated[str, pydantic.AfterValidator(_route)]
Tag = Annotated[str, pydantic.AfterValidator(_tag)]


class Selector(common.Spec):
    # Members are the pods matching both selectors. Without a namespaceSelector pods of EVERY
    # namespace that match podSelector join, so on a multi-tenant cluster anyone who may label
    # a pod could put it on the tailnet; the status says so (condition Scoped).

    namespace_selector: common.LabelSelector | None = Field(
        default=None,
        description=(
            "The namespaces whose pods may join. Unset: every namespace (condition Scoped is "
            "False, reason AllNamespaces); set it on a multi-tenant cluster, where only "
            "cluster admins can label namespaces."
        ),
    )
    pod_selector: common.LabelSelector | None = Field(
        default=None,
        description="The pods that join, within the selected namespaces. Unset: all of them.",
    )


class ExitNode(common.Spec):
    """The tailnet node to use as exit node: by stable node ID or by name (either is accepted)."""

    node_id: str | None = Field(default=None, alias="nodeID")
    name: str | None = None
    allow_lan_access: bool = Field(default=False, alias="allowLANAccess")

    @property
    def target(self) -> str:
        return self.node_id or self.name or ""


class DNS(common.Spec):
    # Whether the gateway's tailscaled takes the tailnet's DNS settings (MagicDNS).
    accept_dns: bool = Field(default=True, alias="acceptDNS")
    # Members resolve tailnet names through their gateway: the renderer checks that every
    # member's pod has the dnsConfig for it (dnsPolicy None, nameserver 100.100.100.100 first,
    # docs/operations.md) and reports those that do not (Degraded, MemberDNSNotConfigured).
    magic_dns: bool = Field(default=False, alias="magicDNS")


# Kubernetes' own formats (apimachinery validation): a label key (optional DNS prefix, a
# name of at most 63), a label value, a resource quantity, a DNS-1123 subdomain.
_LABEL_NAME = r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)"
_DNS_SUBDOMAIN = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
LABEL_KEY = re.compile(rf"^({_DNS_SUBDOMAIN}/)?{_LABEL_NAME}$")
LABEL_VALUE = re.compile(rf"^{_LABEL_NAME}?$")
QUANTITY = re.compile(r"^[+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([KMGTPE]i|[numkMGTPE]|[eE][+-]?[0-9]+)?$")
RESOURCE_NAMES = ("cpu", "memory", "ephemeral-storage")
# The labels tailwire selects and manages gateway pods by: not overridable.
RESERVED_LABEL_PREFIXES = ("egress.tailwire.dev/", "tailwire.dev/", "app.kubernetes.io/")


def _label_key(key: str) -> str:
    if len(key) > 316 or not LABEL_KEY.match(key):
        raise ValueError(f"{key!r} is not a label or annotation key ([prefix/]name, name <= 63)")
    return key


def _labels(value: dict[str, str]) -> dict[str, str]:
    for key, item in value.items():
        _label_key(key)
        if key.startswith(RESERVED_LABEL_PREFIXES):
            raise ValueError(f"{key!r}: tailwire's own labels cannot be overridden")
        if not LABEL_VALUE.match(item):
            raise ValueError(f"{key}: {item!r} is not a label value (<= 63, alphanumeric ends)")
    return value


def _annotations(value: dict[str, str]) -> dict[str, str]:
    for key in value:
        _label_key(key)
    return value


def _quantities(value: dict[str, str]) -> dict[str, str]:
    for name, quantity in value.items():
        if name not in RESOURCE_NAMES:
            raise ValueError(f"{name!r} is not a resource (one of {', '.join(RESOURCE_NAMES)})")
        if not QUANTITY.match(quantity):
            raise ValueError(f"{name}: {quantity!r} is not a quantity (e.g. 100m, 64Mi, 1)")
    return value


class Resources(common.Spec):
    """The gateway container's requests and limits (cpu, memory, ephemeral-storage)."""

    requests: Annotated[dict[str, str], pydantic.AfterValidator(_quantities)] = Field(
        default_factory=dict
    )
    limits: Annotated[dict[str, str], pydantic.AfterValidator(_quantities)] = Field(
        default_factory=dict
    )


class Toleration(common.Spec):
    key: str | None = None
    operator: Literal["Exists", "Equal"] = "Equal"
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = Field(default=None, ge=0)

    @pydantic.model_validator(mode="after")
    def _consistent(self) -> Toleration:
        if self.operator == "Exists" and self.value:
            raise ValueError("operator Exists takes no value")
        if self.operator == "Equal" and not self.key:
            raise ValueError("operator Equal needs a key")
        if self.toleration_seconds is not None and self.effect != "NoExecute":
            raise ValueError("tolerationSeconds applies to effect NoExecute only")
        if self.key is not None:
            _label_key(self.key)
        return self


class GatewayPlacement(common.Spec):
    """Where the group's gateway pods run and how (the Tailscale operator's ProxyClass, for
    one group). Unset fields keep tailwire's defaults: every node's taints tolerated, no
    requests, no priority class, the TAILWIRE_GATEWAY_IMAGE image."""

    # Run gateways only on these nodes (members elsewhere are reported, not wired).
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[Toleration] | None = None
    resources: Resources | None = None
    priority_class_name: str | None = Field(
        default=None, max_length=253, pattern=rf"^{_DNS_SUBDOMAIN}$"
    )
    # Extra labels and annotations on the gateway pods (tailwire's own labels are reserved).
    labels: Annotated[dict[str, str], pydantic.AfterValidator(_labels)] = Field(
        default_factory=dict
    )
    annotations: Annotated[dict[str, str], pydantic.AfterValidator(_annotations)] = Field(
        default_factory=dict
    )
    # The gateway image (tailscaled and a shell): by default TAILWIRE_GATEWAY_IMAGE.
    image: str | None = Field(default=None, min_length=1, max_length=512, pattern=r"^\S+$")


class EgressGroupSpec(common.Spec):
    selector: Selector
    mode: Literal["cgnat", "subnet"] = "cgnat"
    routes: list[Route] = Field(default_factory=list)
    accept_routes: bool = True
    exit_node: ExitNode | None = None
    replicas: int = Field(default=1, ge=1, le=16)
    attach: Literal["routed"] = "routed"
    datapath: Literal["kernel"] = "kernel"
    tags: list[Tag] = Field(default_factory=lambda: list(DEFAULT_TAGS), min_length=1)
    dns: DNS = Field(default_factory=DNS)
    gateway: GatewayPlacement = Field(default_factory=GatewayPlacement)
    # A TailscaleTailnet's name (it becomes a path on the nodes: never `../`).
    tailnet: str | None = Field(
        default=None,
        max_length=253,
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
    )


class EgressGroupStatus(common.Spec):
    conditions: list[common.Condition] = Field(default_factory=list)
    matched_pods: int = 0
    gateway_nodes: list[str] = Field(default_factory=list)
    gateway_hostnames: list[str] = Field(default_factory=list)
    resolved_exit_node: str | None = None
    observed_generation: int | None = None


class EgressGroup(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid", frozen=True)

    api_version: Literal["tailscale.rajsingh.info/v1alpha1"] = Field(alias="apiVersion")
    kind: Literal["EgressGroup"]
    metadata: common.ObjectMeta
    spec: EgressGroupSpec
    status: EgressGroupStatus | None = None


def check(group: EgressGroup) -> list[errors.Problem]:
    """Rules across fields, which pydantic's per-field validation cannot see."""
    spec = group.spec
    problems: list[errors.Problem] = []
    if spec.routes and spec.mode == "cgnat":
        problems.append(
            errors.Problem(
                field="spec.routes",
                message="routes are only steered in mode: subnet (set spec.mode: subnet)",
            )
        )
    if spec.exit_node is not None:
        node_id, name = spec.exit_node.node_id, spec.exit_node.name
        if not (node_id or "").strip() and not (name or "").strip():
            problems.append(
                errors.Problem(
                    field="spec.exitNode.nodeID",
                    message="must not be empty (or set spec.exitNode.name)",
                )
            )
        elif node_id and name and node_id != name:
            problems.append(
                errors.Problem(
                    field="spec.exitNode", message="set nodeID or name, not two different nodes"
                )
            )
    if spec.dns.magic_dns and not spec.dns.accept_dns:
        problems.append(
            errors.Problem(
                field="spec.dns.magicDNS",
                message="needs spec.dns.acceptDNS: true (the gateway answers MagicDNS names "
                "only with the tailnet's DNS settings)",
            )
        )
    if group.metadata.namespace:
        problems.append(
            errors.Problem(
                field="metadata.namespace",
                message="EgressGroup is cluster-scoped; remove the namespace",
            )
        )
    return problems
