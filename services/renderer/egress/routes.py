"""Which destinations a group's members route through the gateway, and which they must not.

The CGNAT range and the tailnet ULA always; `spec.routes` in subnet mode. A route that
*contains* a cluster CIDR (10.0.0.0/8 around 10.244.0.0/16) is kept and that cluster CIDR is
carved out to the pod's own interface; a route that lies *inside* a cluster CIDR (or equals
one) is refused with a reason, since it would hijack cluster traffic. With an exit node every
cluster CIDR is carved out. Must not: do I/O or know about pods.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Sequence

from tailwire.shared.events import nodes

ALWAYS = (nodes.CGNAT_V4, nodes.TAILNET_ULA_V6)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclasses.dataclass(frozen=True, kw_only=True)
class RefusedRoute:
    route: str
    reason: str

    def __str__(self) -> str:
        return f"{self.route}: {self.reason}"


@dataclasses.dataclass(frozen=True, kw_only=True)
class RouteDecision:
    routes: tuple[str, ...]
    carve_outs: tuple[str, ...]
    refused: tuple[RefusedRoute, ...]


def _contains(outer: Network, inner: Network) -> bool:
    return outer.version == inner.version and inner.subnet_of(outer)  # type: ignore[arg-type]


def decide_routes(
    *,
    spec_routes: Sequence[str],
    subnet_mode: bool,
    exit_node: bool,
    cluster_cidrs: Sequence[str],
) -> RouteDecision:
    """Routes in a stable order (ALWAYS first, then spec order, no duplicates)."""
    clusters = [ipaddress.ip_network(c, strict=False) for c in cluster_cidrs]
    kept: list[str] = []
    seen: set[Network] = set()
    carved: set[Network] = set(clusters) if exit_node else set()
    refused: list[RefusedRoute] = []
    candidates = [*ALWAYS, *(spec_routes if subnet_mode else ())]
    for route in candidates:
        network = ipaddress.ip_network(route, strict=False)
        if network in seen:
            continue
        seen.add(network)
        inside = next((c for c in clusters if _contains(c, network)), None)
        if inside is not None:
            refused.append(
                RefusedRoute(
                    route=route,
                    reason=f"lies inside the cluster CIDR {inside}; it would take cluster "
                    "traffic off the pod network",
                )
            )
            continue
        carved.update(c for c in clusters if _contains(network, c))
        kept.append(str(network))
    carve_outs = tuple(str(c) for c in clusters if c in carved)
    return RouteDecision(routes=tuple(kept), carve_outs=carve_outs, refused=tuple(refused))
