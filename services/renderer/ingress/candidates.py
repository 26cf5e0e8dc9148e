"""Which Services become route candidates, and which candidate wins a hostname.

Ingress candidates: the Services a tailnet's `routeGeneration.ingress` selects (by default
every Service in its namespaces with a port named http/https, or a label selector), with the
hostname and path their patterns expand to. Egress candidates: Services naming a tailnet host
(`tailscale.com/tailnet-fqdn` or `tailscale.com/tailnet-ip`). One candidate per hostname wins:
the higher tailnet `priority`, then the earlier tailnet, then namespace/name; a hostname held
by an HTTPRoute tailwire does not own (or an earlier TailscaleGateway's) is left to it. Every
loser, and every Service that cannot get a route, becomes a finding. Pure, no I/O.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from tailwire.services.renderer.ingress import findings, inputs, naming
from tailwire.shared.events import cluster
from tailwire.shared.k8s import labels
from tailwire.shared.resources import tailscalegateway, templates

Direction = Literal["ingress", "egress"]
_WEB_PORT_NAMES = ("http", "https")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Candidate:
    direction: Direction
    tailnet_index: int
    tailnet: tailscalegateway.TailnetConfiguration
    service: cluster.ServiceSnapshot
    host: str
    path: str
    port: int
    ingress: tailscalegateway.IngressRouteConfig | None = None
    egress: tailscalegateway.EgressRouteConfig | None = None

    @property
    def rank(self) -> tuple[int, int, str, str, int]:
        # Lower sorts first and wins: higher priority, earlier tailnet, then names.
        return (
            -self.tailnet.priority,
            self.tailnet_index,
            self.service.meta.namespace or "",
            self.service.meta.name,
            0 if self.direction == "ingress" else 1,
        )

    @property
    def where(self) -> str:
        return f"spec.tailnets[{self.tailnet_index}].routeGeneration.{self.direction}"

    @property
    def service_key(self) -> str:
        return f"{self.service.meta.namespace}/{self.service.meta.name}"


def _namespaces(
    gateway: tailscalegateway.TailscaleGateway, config: tailscalegateway.IngressRouteConfig | None
) -> set[str]:
    if config is not None and config.namespaces:
        return set(config.namespaces)
    return {naming.namespace_of(gateway)}


def is_egress_target(service: cluster.ServiceSnapshot) -> bool:
    annotations = service.meta.annotations
    return naming.TAILNET_FQDN in annotations or naming.TAILNET_IP in annotations


def _eligible(service: cluster.ServiceSnapshot) -> bool:
    """Services that can be a route's backend: not tailwire's own, not a tailnet proxy."""
    return not (
        service.meta.labels.get(labels.MANAGED_BY) == labels.MANAGED_BY_VALUE
        or service.load_balancer_class == labels.TAILSCALE_LOAD_BALANCER_CLASS
        or service.service_type == "ExternalName"
        or is_egress_target(service)
    )


def _web_port(service: cluster.ServiceSnapshot, *, any_tcp: bool) -> cluster.ServicePort | None:
    """The port named (or with appProtocol) http, else https, else with a selector the first
    TCP port."""
    tcp = [port for port in service.ports if port.protocol == "TCP"]
    for wanted in _WEB_PORT_NAMES:
        for port in tcp:
            if port.name == wanted or port.app_protocol == wanted:
                return port
    if any_tcp and tcp:
        return tcp[0]
    return None


def candidates_of(
    gateway: tailscalegateway.TailscaleGateway,
    *,
    index: int,
    snapshots: inputs.Snapshots,
) -> tuple[list[Candidate], tuple[str, ...], list[findings.Finding]]:
    tailnet = gateway.spec.tailnets[index]
    generation = tailnet.route_generation
    found: list[Candidate] = []
    chosen: list[str] = []
    notes: list[findings.Finding] = []
    ingress = generation.ingress if generation else None
    if ingress is not None and ingress.enabled and ingress.host_pattern:
        notes += _filter_findings(index, ingress)
        namespaces = _namespaces(gateway, ingress)
        for service in snapshots.services:
            if service.meta.namespace not in namespaces or not _eligible(service):
                continue
            selector = ingress.service_selector
            if selector is not None and not selector.matches(service.meta.labels):
                continue
            port = _web_port(service, any_tcp=selector is not None)
            if port is None:
                if selector is not None:
                    notes.append(_refused(index, "ingress", service, "has no TCP port"))
                continue
            if "https" in (port.name, port.app_protocol):
                notes.append(
                    findings.finding(
                        category=findings.Category.NOT_ENFORCED,
                        field=f"spec.tailnets[{index}].routeGeneration.ingress",
                        message=f"Service {service.meta.namespace}/{service.meta.name}: only an "
                        f"https port ({port.port}); Envoy speaks plain HTTP to it unless a "
                        "BackendTLSPolicy says otherwise",
                    )
                )
            chosen.append(f"{service.meta.namespace}/{service.meta.name}")
            candidate = _candidate(
                "ingress",
                index=index,
                tailnet=tailnet,
                service=service,
                host_pattern=ingress.host_pattern,
                path_pattern=ingress.path_prefix,
                port=port.port,
            )
            if isinstance(candidate, Candidate):
                candidate = dataclasses.replace(candidate, ingress=ingress)
            if isinstance(candidate, findings.Finding):
                notes.append(candidate)
            else:
                found.append(candidate)
    egress = generation.egress if generation else None
    if egress is not None and egress.enabled and egress.host_pattern:
        for service in snapshots.services:
            if service.meta.namespace != naming.namespace_of(gateway):
                continue
            if not is_egress_target(service):
                continue
            owner = service.meta.labels.get(labels.TAILNET)
            if owner is not None and owner != tailnet.name:
                continue
            chosen.append(f"{service.meta.namespace}/{service.meta.name}")
            if not service.ports:
                notes.append(_refused(index, "egress", service, "has no port"))
                continue
            candidate = _candidate(
                "egress",
                index=index,
                tailnet=tailnet,
                service=service,
                host_pattern=egress.host_pattern,
                path_pattern=egress.path_prefix or "/",
                port=service.ports[0].port,
            )
            if isinstance(candidate, Candidate):
                candidate = dataclasses.replace(candidate, egress=egress)
            if isinstance(candidate, findings.Finding):
                notes.append(candidate)
            else:
                found.append(candidate)
    return found, tuple(dict.fromkeys(chosen)), notes


def _filter_findings(
    index: int, ingress: tailscalegateway.IngressRouteConfig
) -> list[findings.Finding]:
    """Header values may use {service}, {namespace}, {tailnet}; anything else in braces is
    sent literally (Envoy does not expand it either), and said so."""
    notes = []
    for f_index, route_filter in enumerate(ingress.filters):
        for key in ("request_header_modifier", "response_header_modifier"):
            modifier = getattr(route_filter, key)
            if modifier is None:
                continue
            for verb in ("set", "add"):
                for h_index, header in enumerate(getattr(modifier, verb)):
                    unknown = templates.unknown_placeholders(templates.normalize(header.value))
                    if not unknown:
                        continue
                    alias = type(route_filter).model_fields[key].alias or key
                    notes.append(
                        findings.finding(
                            category=findings.Category.NOT_ENFORCED,
                            field=f"spec.tailnets[{index}].routeGeneration.ingress.filters"
                            f"[{f_index}].{alias}.{verb}[{h_index}].value",
                            message=f"{{{unknown[0]}}} is not a placeholder tailwire fills "
                            "(only {service}, {namespace}, {tailnet}); header "
                            f"{header.name} is sent with it literally",
                        )
                    )
    return notes


def _refused(
    index: int, direction: str, service: cluster.ServiceSnapshot, why: str
) -> findings.Finding:
    return findings.finding(
        category=findings.Category.REFUSED,
        field=f"spec.tailnets[{index}].routeGeneration.{direction}",
        message=f"Service {service.meta.namespace}/{service.meta.name} {why}; no route",
    )


def _candidate(
    direction: Direction,
    *,
    index: int,
    tailnet: tailscalegateway.TailnetConfiguration,
    service: cluster.ServiceSnapshot,
    host_pattern: str,
    path_pattern: str,
    port: int,
) -> Candidate | findings.Finding:
    values = {
        "service": service.meta.name,
        "namespace": service.meta.namespace or "",
        "tailnet": tailnet.name,
    }
    where = f"spec.tailnets[{index}].routeGeneration.{direction}"
    try:
        host = templates.expand(host_pattern, **values)
        path = templates.expand(path_pattern, **values)
    except ValueError as exc:
        return findings.finding(category=findings.Category.INVALID, field=where, message=str(exc))
    problem = templates.dns_name_problem(host)
    if problem is not None:
        return findings.finding(
            category=findings.Category.REFUSED,
            field=f"{where}.hostPattern",
            message=f"Service {service.meta.namespace}/{service.meta.name}: host {host!r} "
            f"{problem}; no route",
        )
    return Candidate(
        direction=direction,
        tailnet_index=index,
        tailnet=tailnet,
        service=service,
        host=host,
        path=path,
        port=port,
    )


def resolve(
    gateway: tailscalegateway.TailscaleGateway,
    *,
    candidates: list[Candidate],
    snapshots: inputs.Snapshots,
) -> tuple[list[Candidate], list[findings.Finding]]:
    """One route per hostname; the rest become findings naming the winner."""
    me = (naming.namespace_of(gateway), naming.short(gateway.metadata.name))
    taken: dict[str, str] = {}
    for route in snapshots.routes:
        owner = naming.owner_key(route.meta.labels)
        if owner == me:
            continue
        if owner is not None and owner > me:
            continue  # a later TailscaleGateway yields to this one
        who = f"HTTPRoute {route.meta.namespace}/{route.meta.name}" + (
            f" of TailscaleGateway {owner[0]}/{owner[1]}" if owner else " (not tailwire's)"
        )
        for host in route.hostnames:
            taken.setdefault(host, who)
    winners: dict[str, Candidate] = {}
    notes: list[findings.Finding] = []
    for candidate in sorted(candidates, key=lambda c: c.rank):
        if candidate.host in taken:
            notes.append(
                findings.finding(
                    category=findings.Category.CONFLICT,
                    field=f"{candidate.where}.hostPattern",
                    message=f"Service {candidate.service_key}: host {candidate.host} is already "
                    f"served by {taken[candidate.host]}; no route",
                )
            )
            continue
        winner = winners.get(candidate.host)
        if winner is None:
            winners[candidate.host] = candidate
            continue
        notes.append(
            findings.finding(
                category=findings.Category.CONFLICT,
                field=f"spec.tailnets[{candidate.tailnet_index}].priority",
                message=f"host {candidate.host}: tailnet {winner.tailnet.name} (priority "
                f"{winner.tailnet.priority}, Service {winner.service_key}) wins over tailnet "
                f"{candidate.tailnet.name} (priority {candidate.tailnet.priority}, Service "
                f"{candidate.service_key}); the loser gets no route",
            )
        )
    ordered = sorted(winners.values(), key=lambda c: (c.direction, c.tailnet_index, c.rank))
    return ordered, notes
