"""The dnsupdater's view of the cluster: the latest Services, Gateways and HTTPRoutes.

Rebuilt on start from the last message per subject of TAILWIRE_CLUSTER, then followed.
`synced` turns true once every kind has caught up with what the stream held at start, so a
half-built view (Services seen, routes not yet) never deletes records. Only Tailscale
LoadBalancer Services are kept. Must not do I/O or decide what DNS should say.
"""

from __future__ import annotations

from tailwire.services.dnsupdater.domain import exposures
from tailwire.shared import subjects
from tailwire.shared.events import cluster
from tailwire.shared.k8s import labels

KINDS = (subjects.Kind.SERVICE, subjects.Kind.GATEWAY, subjects.Kind.HTTPROUTE)
Watched = cluster.ServiceSnapshot | cluster.GatewaySnapshot | cluster.HTTPRouteSnapshot


def _key(snapshot: Watched) -> tuple[str, str]:
    return (snapshot.meta.namespace or "default", snapshot.meta.name)


class ClusterView:
    def __init__(self) -> None:
        self.services: dict[tuple[str, str], cluster.ServiceSnapshot] = {}
        self.gateways: dict[exposures.GatewayRef, cluster.GatewaySnapshot] = {}
        self.routes: dict[tuple[str, str], cluster.HTTPRouteSnapshot] = {}
        self._behind: set[subjects.Kind] = set(KINDS)

    def put(self, snapshot: Watched) -> None:
        """Record a snapshot; a tombstone (or a Service leaving Tailscale) removes it."""
        key = _key(snapshot)
        if isinstance(snapshot, cluster.ServiceSnapshot):
            keep = (
                not snapshot.deleted
                and snapshot.load_balancer_class == labels.TAILSCALE_LOAD_BALANCER_CLASS
            )
            if keep:
                self.services[key] = snapshot
            else:
                self.services.pop(key, None)
        elif isinstance(snapshot, cluster.GatewaySnapshot):
            ref = exposures.GatewayRef(namespace=key[0], name=key[1])
            if snapshot.deleted:
                self.gateways.pop(ref, None)
            else:
                self.gateways[ref] = snapshot
        elif snapshot.deleted:
            self.routes.pop(key, None)
        else:
            self.routes[key] = snapshot

    def caught_up(self, kind: subjects.Kind) -> None:
        """The stream has nothing older pending for `kind`."""
        self._behind.discard(kind)

    @property
    def synced(self) -> bool:
        return not self._behind

    def exposures(self) -> dict[exposures.GatewayRef, exposures.Exposure]:
        return exposures.tailnet_exposures(services=self.services.values(), gateways=self.gateways)
