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

_Snap = TypeVar(
    "_Snap",
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

    @classmethod
    def of(
        cls,
        *,
        services: Iterable[cluster.ServiceSnapshot] = (),
        gateways: Iterable[cluster.GatewaySnapshot] = (),
        tailnets: Iterable[cluster.TailscaleTailnetSnapshot] = (),
        routes: Iterable[cluster.HTTPRouteSnapshot] = (),
    ) -> Snapshots:
        """Live objects only (tombstones dropped), in a stable order."""

        return cls(
            services=live(services),
            gateways=live(gateways),
            tailnets=live(tailnets),
            routes=live(routes),
        )

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
