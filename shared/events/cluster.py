"""Normalized snapshots of Kubernetes objects: `tailwire.v1.cluster.<kind>.<ns or _>.<name>`.

Only the fields some consumer needs, so a 10,000-pod cluster fits in memory downstream and
status churn (kubelet heartbeats, conditions) does not reach the bus. A deletion is the same
model with `deleted=True` (a tombstone); its payload fields keep their last known values.
Custom resources carry their raw `spec`: the renderer validates it and reports problems in
status, because the watcher translates and never decides.
"""

from __future__ import annotations

import datetime
from typing import Annotated, Any, Literal

from pydantic import Field

from tailwire.shared import subjects
from tailwire.shared.events import base


class Owner(base.Frozen):
    kind: str
    name: str
    uid: str
    controller: bool = False


class Meta(base.Frozen):
    """The metadata every snapshot carries."""

    uid: str
    namespace: str | None = None
    name: str
    resource_version: str = ""
    generation: int | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    # Only annotations under prefixes tailwire reads (tailscale.com/, tailwire.dev/,
    # external-dns.*): the rest is noise for consumers.
    annotations: dict[str, str] = Field(default_factory=dict)
    owners: tuple[Owner, ...] = ()
    deletion_timestamp: datetime.datetime | None = None
    finalizers: tuple[str, ...] = ()
    # When the object was created: who claimed a shared name first (dnsupdater) is the older.
    creation_timestamp: datetime.datetime | None = None


class _Snapshot(base.Event):
    type: Literal["cluster.snapshot"] = "cluster.snapshot"
    kind: subjects.Kind
    meta: Meta
    deleted: bool = False

    @property
    def ref(self) -> subjects.ObjectRef:
        return subjects.ObjectRef(
            kind=self.kind,
            namespace=self.meta.namespace,
            name=self.meta.name,
        )

    @property
    def dedup_id(self) -> str:
        """`<uid>:<resourceVersion>`, distinct for tombstones (DESIGN.md, The bus)."""
        suffix = ":deleted" if self.deleted else ""
        return f"{self.meta.uid}:{self.meta.resource_version}{suffix}"


class PodSnapshot(_Snapshot):
    kind: Literal[subjects.Kind.POD] = subjects.Kind.POD
    node_name: str | None = None
    phase: str | None = None
    pod_ips: tuple[str, ...] = ()
    host_network: bool = False
    # spec.dnsPolicy and spec.dnsConfig.nameservers: does a member resolve MagicDNS names?
    dns_policy: str | None = None
    dns_nameservers: tuple[str, ...] = ()

    @property
    def resolves_magic_dns(self) -> bool:
        """Its resolver is the gateway's quad-100 alone (kubelet writes nameservers in order,
        and a resolver that says NXDOMAIN for a tailnet name is never followed by the next)."""
        return self.dns_policy == "None" and self.dns_nameservers[:1] == ("100.100.100.100",)


class NamespaceSnapshot(_Snapshot):
    kind: Literal[subjects.Kind.NAMESPACE] = subjects.Kind.NAMESPACE


class NodeSnapshot(_Snapshot):
    kind: Literal[subjects.Kind.NODE] = subjects.Kind.NODE
    pod_cidrs: tuple[str, ...] = ()
    internal_ips: tuple[str, ...] = ()
    ready: bool = False
    unschedulable: bool = False


class ServicePort(base.Frozen):
    name: str | None = None
    port: int
    protocol: str = "TCP"
    target_port: int | str | None = None
    app_protocol: str | None = None


class LoadBalancerIngress(base.Frozen):
    ip: str | None = None
    hostname: str | None = None


class ServiceSnapshot(_Snapshot):
    kind: Literal[subjects.Kind.SERVICE] = subjects.Kind.SERVICE
    service_type: str = "ClusterIP"
    load_balancer_class: str | None = None
    cluster_ips: tuple[str, ...] = ()
    ports: tuple[ServicePort, ...] = ()
    selector: dict[str, str] = Field(default_factory=dict)
    load_balancer_ingress: tuple[LoadBalancerIngress, ...] = ()


class Listener(base.Frozen):
    name: str
    port: int
    protocol: str
    hostname: str | None = None


class GatewaySnapshot(_Snapshot):
    kind: Literal[subjects.Kind.GATEWAY] = subjects.Kind.GATEWAY
    gateway_class_name: str
    listeners: tuple[Listener, ...] = ()
    addresses: tuple[str, ...] = ()
    programmed: bool | None = None


class ParentRef(base.Frozen):
    group: str = "gateway.networking.k8s.io"
    kind: str = "Gateway"
    namespace: str | None = None
    name: str
    section_name: str | None = None


class RouteParentStatus(base.Frozen):
    parent: ParentRef
    accepted: bool


class HTTPRouteSnapshot(_Snapshot):
    kind: Literal[subjects.Kind.HTTPROUTE] = subjects.Kind.HTTPROUTE
    parent_refs: tuple[ParentRef, ...] = ()
    hostnames: tuple[str, ...] = ()
    parents: tuple[RouteParentStatus, ...] = ()
    backend_services: tuple[str, ...] = ()


class _CustomSnapshot(_Snapshot):
    api_version: str
    spec: dict[str, Any] = Field(default_factory=dict)


class EgressGroupSnapshot(_CustomSnapshot):
    kind: Literal[subjects.Kind.EGRESSGROUP] = subjects.Kind.EGRESSGROUP


class TailscaleGatewaySnapshot(_CustomSnapshot):
    kind: Literal[subjects.Kind.TAILSCALEGATEWAY] = subjects.Kind.TAILSCALEGATEWAY


class TailscaleTailnetSnapshot(_CustomSnapshot):
    kind: Literal[subjects.Kind.TAILSCALETAILNET] = subjects.Kind.TAILSCALETAILNET


Snapshot = Annotated[
    PodSnapshot
    | NamespaceSnapshot
    | NodeSnapshot
    | ServiceSnapshot
    | GatewaySnapshot
    | HTTPRouteSnapshot
    | EgressGroupSnapshot
    | TailscaleGatewaySnapshot
    | TailscaleTailnetSnapshot,
    Field(discriminator="kind"),
]
