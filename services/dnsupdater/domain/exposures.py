"""Which Gateways are on the tailnet, at which addresses, and which hostnames they serve.

A Gateway is tailnet-exposed when a Service of `loadBalancerClass: tailscale` carries Envoy
Gateway's owner labels for it and its LoadBalancer status has addresses (the Tailscale
operator writes the 100.x/fd7a: IPs and the MagicDNS name there). A hostname is served by
such a Gateway when an HTTPRoute lists it, names the Gateway in `parentRefs`, and the
Gateway accepted the route (`status.parents[].conditions Accepted=True`), narrowed by the
hostnames of the listeners it attaches to (a route without hostnames takes theirs).

Pure: works on snapshots handed in; must not read the bus or the cluster.
"""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
from collections.abc import Iterable, Mapping

from tailwire.shared.events import cluster
from tailwire.shared.k8s import labels

GATEWAY_GROUP = "gateway.networking.k8s.io"


@dataclasses.dataclass(frozen=True, order=True, kw_only=True)
class GatewayRef:
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclasses.dataclass(frozen=True, kw_only=True)
class Exposure:
    """A tailnet-exposed Gateway: its Tailscale addresses and MagicDNS name (if known)."""

    gateway: GatewayRef
    ipv4: tuple[str, ...]
    ipv6: tuple[str, ...]
    hostname: str | None
    listeners: tuple[cluster.Listener, ...] = ()


def normalize_hostname(name: str) -> str:
    """Lower case, no trailing dot: the one spelling compared everywhere."""
    return name.strip().rstrip(".").lower()


def _gateway_of_service(service: cluster.ServiceSnapshot) -> GatewayRef | None:
    name = service.meta.labels.get(labels.ENVOY_OWNING_GATEWAY_NAME)
    namespace = service.meta.labels.get(labels.ENVOY_OWNING_GATEWAY_NAMESPACE)
    if not name or not namespace:
        return None
    return GatewayRef(namespace=namespace, name=name)


def _split_addresses(service: cluster.ServiceSnapshot) -> tuple[list[str], list[str], str | None]:
    ipv4: list[str] = []
    ipv6: list[str] = []
    hostname: str | None = None
    for ingress in service.load_balancer_ingress:
        if ingress.ip:
            try:
                address = ipaddress.ip_address(ingress.ip)
            except ValueError:
                continue  # a malformed status entry is skipped, not trusted
            (ipv4 if address.version == 4 else ipv6).append(str(address))
        if ingress.hostname and hostname is None:
            hostname = normalize_hostname(ingress.hostname)
    if hostname is None:
        annotated = service.meta.annotations.get(labels.TAILSCALE_HOSTNAME)
        hostname = normalize_hostname(annotated) if annotated else None
    return ipv4, ipv6, hostname


def tailnet_exposures(
    *,
    services: Iterable[cluster.ServiceSnapshot],
    gateways: Mapping[GatewayRef, cluster.GatewaySnapshot],
) -> dict[GatewayRef, Exposure]:
    """Every live Gateway with a Tailscale LoadBalancer Service that has addresses."""
    found: dict[GatewayRef, tuple[set[str], set[str], str | None]] = {}
    for service in services:
        if service.deleted or service.service_type != "LoadBalancer":
            continue
        if service.load_balancer_class != labels.TAILSCALE_LOAD_BALANCER_CLASS:
            continue
        ref = _gateway_of_service(service)
        gateway = gateways.get(ref) if ref else None
        if ref is None or gateway is None or gateway.deleted:
            continue
        ipv4, ipv6, hostname = _split_addresses(service)
        v4, v6, known = found.setdefault(ref, (set(), set(), None))
        v4.update(ipv4)
        v6.update(ipv6)
        found[ref] = (v4, v6, known or hostname)
    return {
        ref: Exposure(
            gateway=ref,
            ipv4=tuple(sorted(v4, key=ipaddress.ip_address)),
            ipv6=tuple(sorted(v6, key=ipaddress.ip_address)),
            hostname=hostname,
            listeners=gateways[ref].listeners,
        )
        for ref, (v4, v6, hostname) in sorted(found.items())
        if v4 or v6
    }


def _parent_gateway(parent: cluster.ParentRef, *, route_namespace: str) -> GatewayRef | None:
    if parent.group != GATEWAY_GROUP or parent.kind != "Gateway":
        return None
    return GatewayRef(namespace=parent.namespace or route_namespace, name=parent.name)


def accepted_gateways(route: cluster.HTTPRouteSnapshot) -> set[GatewayRef]:
    """The Gateways a route names in `parentRefs` that also accepted it in status."""
    namespace = route.meta.namespace or "default"
    named = {
        ref
        for parent in route.parent_refs
        if (ref := _parent_gateway(parent, route_namespace=namespace)) is not None
    }
    accepted = {
        ref
        for status in route.parents
        if status.accepted
        and (ref := _parent_gateway(status.parent, route_namespace=namespace)) is not None
    }
    return named & accepted


def _intersect(*, listener: str, host: str) -> str | None:
    """The hostname a listener and a route hostname both match (Gateway API rules), if any."""
    if listener == host:
        return host
    if listener.startswith("*.") and host.endswith(listener[1:]):
        return host  # the route is the more specific one
    if host.startswith("*.") and listener.endswith(host[1:]):
        return listener
    return None


def effective_hostnames(route: cluster.HTTPRouteSnapshot, *, exposure: Exposure) -> set[str]:
    """The names a route serves on one Gateway: its hostnames narrowed by the listeners'.

    A route without hostnames takes the listeners' hostnames; a listener without one
    accepts every route hostname (and then a route without hostnames has no nameable host).
    """
    namespace = route.meta.namespace or "default"
    sections = {
        parent.section_name
        for parent in route.parent_refs
        if _parent_gateway(parent, route_namespace=namespace) == exposure.gateway
    }
    listeners = [
        listener for listener in exposure.listeners if None in sections or listener.name in sections
    ]
    hosts = {normalize_hostname(h) for h in route.hostnames}
    if not listeners or any(listener.hostname is None for listener in listeners):
        return hosts
    bounds = {normalize_hostname(listener.hostname or "") for listener in listeners}
    if not hosts:
        return bounds
    return {
        match
        for host in hosts
        for bound in bounds
        if (match := _intersect(listener=bound, host=host)) is not None
    }


@dataclasses.dataclass(frozen=True, order=True, kw_only=True)
class RouteRef:
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclasses.dataclass(frozen=True, order=True, kw_only=True)
class Conflict:
    """A route whose claim on `hostname` lost to an older route of another namespace."""

    hostname: str
    loser: RouteRef
    winner: RouteRef

    def __str__(self) -> str:
        return (
            f"HTTPRoute {self.loser} does not get {self.hostname}: HTTPRoute {self.winner} "
            f"(namespace {self.winner.namespace}) claimed it first"
        )


_NEVER = datetime.datetime.max.replace(tzinfo=datetime.UTC)


def _claim_order(route: cluster.HTTPRouteSnapshot) -> tuple[datetime.datetime, str, str]:
    """Older first; a route without a creation time after every dated one; then by name."""
    return (route.meta.creation_timestamp or _NEVER, route.meta.namespace or "", route.meta.name)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Served:
    """hostname -> the tailnet Gateways serving it (sorted); and the claims that lost."""

    hostnames: dict[str, tuple[Exposure, ...]]
    conflicts: tuple[Conflict, ...] = ()


def served_hostnames(
    *,
    routes: Iterable[cluster.HTTPRouteSnapshot],
    exposures: Mapping[GatewayRef, Exposure],
) -> Served:
    """Every hostname a live, accepted route serves, and the Gateways serving it.

    One namespace owns a name: that of the oldest route claiming it (creationTimestamp, then
    namespace/name), so a tenant's later route cannot add its Gateway's addresses to another
    team's name. Routes of the owner's namespace share it (path-split routes on one host);
    other namespaces' claims are `conflicts`, the same whatever order the routes come in.
    Wildcard hostnames (`*.apps.example.com`) are kept: the RFC 2136 backend can publish a
    wildcard record; backends that cannot skip them.
    """
    claims: dict[str, list[tuple[cluster.HTTPRouteSnapshot, GatewayRef]]] = {}
    for route in routes:
        if route.deleted:
            continue
        for ref in sorted(accepted_gateways(route) & exposures.keys()):
            for hostname in effective_hostnames(route, exposure=exposures[ref]):
                claims.setdefault(hostname, []).append((route, ref))
    served: dict[str, tuple[Exposure, ...]] = {}
    conflicts: set[Conflict] = set()
    for hostname, claimed in sorted(claims.items()):
        first = min((route for route, _ in claimed), key=_claim_order)
        owner = first.meta.namespace or "default"
        refs = set()
        for route, ref in claimed:
            namespace = route.meta.namespace or "default"
            if namespace == owner:
                refs.add(ref)
            else:
                conflicts.add(
                    Conflict(
                        hostname=hostname,
                        loser=RouteRef(namespace=namespace, name=route.meta.name),
                        winner=RouteRef(namespace=owner, name=first.meta.name),
                    )
                )
        served[hostname] = tuple(exposures[ref] for ref in sorted(refs))
    return Served(hostnames=served, conflicts=tuple(sorted(conflicts)))


def in_zone(hostname: str, *, zone: str) -> bool:
    zone = normalize_hostname(zone)
    return hostname == zone or hostname.endswith("." + zone)
