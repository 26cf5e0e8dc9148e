"""Which destinations a group's members route through the gateway, and which they must not.

The CGNAT range and the tailnet ULA always; `spec.routes` in subnet mode. A route that
*contains* a cluster CIDR (10.0.0.0/8 around 10.244.0.0/16) is kept and that cluster CIDR is
carved out to the pod's own interface; a route that lies *inside* a cluster CIDR (or equals
one) is refused with a reason, since it would hijack cluster traffic. With an exit node every
cluster CIDR is carved out. Node addresses (InternalIPs) covered by a kept route or the exit
node are carved out too, adjacent ones merged into one network, so members keep reaching
their nodes through their own interface; a route made only of node addresses is refused.
Must not: do I/O or know about pods.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Iterable, Mapping, Sequence

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


def _node_networks(
    node_addresses: Mapping[str, Sequence[str]], *, clusters: Sequence[Network]
) -> dict[Network, str]:
    """Each node address as a host network -> its node, except those inside a cluster CIDR
    (carved out with it) and those that do not parse (nothing to keep on eth0)."""
    found: dict[Network, str] = {}
    for name, addresses in sorted(node_addresses.items()):
        for address in addresses:
            try:
                host = ipaddress.ip_network(address)
            except ValueError:
                continue
            if not any(_contains(c, host) for c in clusters):
                found.setdefault(host, name)
    return found


def _collapse(networks: Iterable[Network]) -> list[Network]:
    """Adjacent host networks merged (10.0.1.4 and 10.0.1.5 are 10.0.1.4/31), v4 first."""
    chosen = list(networks)
    v4 = [n for n in chosen if isinstance(n, ipaddress.IPv4Network)]
    v6 = [n for n in chosen if isinstance(n, ipaddress.IPv6Network)]
    return [*ipaddress.collapse_addresses(v4), *ipaddress.collapse_addresses(v6)]


def decide_routes(
    *,
    spec_routes: Sequence[str],
    subnet_mode: bool,
    exit_node: bool,
    cluster_cidrs: Sequence[str],
    node_addresses: Mapping[str, Sequence[str]] | None = None,
    accepted: Sequence[str] = (),
) -> RouteDecision:
    """Routes in a stable order (ALWAYS first, then spec order, then `accepted`, no duplicates).

    `accepted`: the subnet routes the group's gateway took from the tailnet (acceptRoutes),
    as its node's ack reports them. They follow the same rules, but one that is not kept is
    dropped quietly: it is the tailnet's, not a mistake in the spec.

    `node_addresses`: node name -> its InternalIPs. Carve-outs: the cluster CIDRs a route
    (or the exit node) covers, in their order, then the covered node addresses."""
    clusters = [ipaddress.ip_network(c, strict=False) for c in cluster_cidrs]
    node_nets = _node_networks(node_addresses or {}, clusters=clusters)
    node_blocks = _collapse(node_nets)
    kept: list[Network] = []
    seen: set[Network] = set()
    carved: set[Network] = set(clusters) if exit_node else set()
    refused: list[RefusedRoute] = []
    reported = [*ALWAYS, *(spec_routes if subnet_mode else ())]
    candidates = [(route, True) for route in reported] + [(route, False) for route in accepted]
    for route, report in candidates:
        try:
            network = ipaddress.ip_network(route, strict=False)
        except ValueError:
            continue  # only an ack could carry one; the spec is validated before
        if network in seen or network.prefixlen == 0:
            continue  # the default route is the exit node's business, never a subnet
        seen.add(network)
        inside = next((c for c in clusters if _contains(c, network)), None)
        if inside is not None and not report:
            continue
        if inside is not None:
            refused.append(
                RefusedRoute(
                    route=route,
                    reason=f"lies inside the cluster CIDR {inside}; it would take cluster "
                    "traffic off the pod network",
                )
            )
            continue
        block = next((b for b in node_blocks if _contains(b, network)), None)
        if block is not None and not report:
            continue
        if block is not None:
            owners = sorted({n for h, n in node_nets.items() if _contains(network, h)})
            refused.append(
                RefusedRoute(
                    route=route,
                    reason=f"holds only node addresses ({', '.join(owners)}); it would take "
                    "the nodes' traffic (kubelet probes, hostNetwork pods) off the pod network",
                )
            )
            continue
        carved.update(c for c in clusters if _contains(network, c))
        kept.append(network)
    covered = [
        host for host in node_nets if exit_node or any(_contains(route, host) for route in kept)
    ]
    carve_outs = (
        *(str(c) for c in clusters if c in carved),
        *(str(block) for block in _collapse(covered)),
    )
    return RouteDecision(
        routes=tuple(str(r) for r in kept), carve_outs=carve_outs, refused=tuple(refused)
    )
