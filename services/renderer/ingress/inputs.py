"""The inputs of ingress rendering besides the TailscaleGateway: snapshots and settings.

Plain frozen containers with a few lookups; no I/O. The renderer's view fills them from the
bus, `tailwire render` from files.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Iterable, Mapping
from typing import TypeVar

from tailwire.shared.events import cluster, keys

# The Namespace annotation by which a namespace's admin lets TailscaleGateways of the listed
# namespaces (comma-separated, or "*") write into it: HTTPRoutes for its Services, a
# ReferenceGrant to its Secret, a Gateway or Envoy Services there.
ACCEPT_FROM = "tailwire.dev/accept-from"

_Snap = TypeVar(
    "_Snap",
    cluster.NamespaceSnapshot,
    cluster.ServiceSnapshot,
    cluster.GatewaySnapshot,
    cluster.TailscaleTailnetSnapshot,
    cluster.HTTPRouteSnapshot,
)


def live(items: Iterable[_Snap]) -> tuple[_Snap, ...]:
    kept = [item for item in items if not item.deleted]
    return tuple(sorted(kept, key=lambda i: (i.meta.namespace or "", i.meta.name)))


@dataclasses.dataclass(frozen=True, kw_only=True)
class Settings:
    """`now` fills `gatewayInfo.lastReconciled` and condition times; None keeps output
    byte-for-byte deterministic (golden files, `tailwire render`). `tailnet_checks`: the
    keyminter's last check per TailscaleTailnet; offline there are none, and every valid
    tailnet shows as not checked yet (`Pending`)."""

    now: datetime.datetime | None = None
    tailnet_checks: Mapping[str, keys.TailnetChecked] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Snapshots:
    services: tuple[cluster.ServiceSnapshot, ...] = ()
    gateways: tuple[cluster.GatewaySnapshot, ...] = ()
    tailnets: tuple[cluster.TailscaleTailnetSnapshot, ...] = ()
    routes: tuple[cluster.HTTPRouteSnapshot, ...] = ()
    namespaces: tuple[cluster.NamespaceSnapshot, ...] = ()

    @classmethod
    def of(
        cls,
        *,
        services: Iterable[cluster.ServiceSnapshot] = (),
        gateways: Iterable[cluster.GatewaySnapshot] = (),
        tailnets: Iterable[cluster.TailscaleTailnetSnapshot] = (),
        routes: Iterable[cluster.HTTPRouteSnapshot] = (),
        namespaces: Iterable[cluster.NamespaceSnapshot] = (),
    ) -> Snapshots:
        """Live objects only (tombstones dropped), in a stable order."""

        return cls(
            services=live(services),
            gateways=live(gateways),
            tailnets=live(tailnets),
            routes=live(routes),
            namespaces=live(namespaces),
        )

    def accepts(self, *, target: str, source: str) -> bool:
        """Whether namespace `target` lets a TailscaleGateway of namespace `source` write
        into it: its own always; another only by `ACCEPT_FROM` on the target Namespace."""
        if target == source:
            return True
        for namespace in self.namespaces:
            if namespace.meta.name == target:
                listed = namespace.meta.annotations.get(ACCEPT_FROM, "")
                allowed = {item.strip() for item in listed.split(",")}
                return source in allowed or "*" in allowed
        return False

    def gateway(self, *, namespace: str, name: str) -> cluster.GatewaySnapshot | None:
        for gateway in self.gateways:
            if gateway.meta.namespace == namespace and gateway.meta.name == name:
                return gateway
        return None

    def service(self, *, namespace: str, name: str) -> cluster.ServiceSnapshot | None:
        for service in self.services:
            if service.meta.namespace == namespace and service.meta.name == name:
                return service
        return None

    def tailnet(self, name: str) -> cluster.TailscaleTailnetSnapshot | None:
        for tailnet in self.tailnets:
            if tailnet.meta.name == name:
                return tailnet
        return None
