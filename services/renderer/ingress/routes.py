"""Route generation: Services -> HTTPRoutes with hostnames from `hostPattern`.

Ingress (tailnet clients -> cluster Services): for each tailnet with
`routeGeneration.ingress.enabled`, every selected Service gets an HTTPRoute on the gateway
(plus `additionalParentRefs`), hostname from the pattern, `pathPrefix`, default backend
weight and `filters`. Egress (cluster clients -> tailnet hosts): for each Service that names
a tailnet target (`tailscale.com/tailnet-fqdn` or `tailscale.com/tailnet-ip`, as the
Tailscale operator's egress Services do), an Envoy Gateway `Backend`, an HTTPRoute with the
egress hostname, `pathPrefix` and `rewriteRules` (URLRewrite) and `timeout`.

When two candidates produce the same hostname, the higher tailnet `priority` wins, then the
earlier tailnet in the spec, then namespace/name; a hostname already served by an HTTPRoute
tailwire does not own (or owned by an earlier TailscaleGateway) is left alone. Every loser
is a finding. Pure, no I/O.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any, Literal

from tailwire.services.renderer.ingress import findings, inputs, naming, policies, stack
from tailwire.shared.events import cluster
from tailwire.shared.k8s import labels
from tailwire.shared.resources import tailscalegateway, templates

Manifest = dict[str, Any]
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


@dataclasses.dataclass(frozen=True, kw_only=True)
class Routes:
    manifests: tuple[Manifest, ...]
    findings: tuple[findings.Finding, ...]
    winners: tuple[Candidate, ...]
    # Services each tailnet selected (tailnet name -> service keys), for status.
    selected: dict[str, tuple[str, ...]]


def render_routes(
    gateway: tailscalegateway.TailscaleGateway,
    *,
    snapshots: inputs.Snapshots,
    target: stack.Target,
) -> Routes:
    notes: list[findings.Finding] = []
    candidates: list[Candidate] = []
    selected: dict[str, tuple[str, ...]] = {}
    for index, tailnet in enumerate(gateway.spec.tailnets):
        found, chosen, problems = _candidates(gateway, index=index, snapshots=snapshots)
        candidates += found
        selected[tailnet.name] = chosen
        notes += problems
    winners, conflict_notes = _resolve(gateway, candidates=candidates, snapshots=snapshots)
    notes += conflict_notes
    manifests: list[Manifest] = []
    for candidate in winners:
        if candidate.direction == "ingress":
            manifests += _ingress_objects(gateway, candidate=candidate, target=target)
        else:
            manifests += _egress_objects(gateway, candidate=candidate, target=target)
    return Routes(
        manifests=tuple(manifests),
        findings=tuple(notes),
        winners=tuple(winners),
        selected=selected,
    )


def _namespaces(
    gateway: tailscalegateway.TailscaleGateway, config: tailscalegateway.IngressRouteConfig | None
) -> set[str]:
    if config is not None and config.namespaces:
        return set(config.namespaces)
    return {naming.namespace_of(gateway)}


def _is_egress_target(service: cluster.ServiceSnapshot) -> bool:
    annotations = service.meta.annotations
    return naming.TAILNET_FQDN in annotations or naming.TAILNET_IP in annotations


def _eligible(service: cluster.ServiceSnapshot) -> bool:
    """Services that can be a route's backend: not tailwire's own, not a tailnet proxy."""
    return not (
        service.meta.labels.get(labels.MANAGED_BY) == labels.MANAGED_BY_VALUE
        or service.load_balancer_class == labels.TAILSCALE_LOAD_BALANCER_CLASS
        or service.service_type == "ExternalName"
        or _is_egress_target(service)
    )


def _web_port(service: cluster.ServiceSnapshot, *, any_tcp: bool) -> int | None:
    tcp = [port for port in service.ports if port.protocol == "TCP"]
    for wanted in _WEB_PORT_NAMES:
        for port in tcp:
            if port.name == wanted or port.app_protocol == wanted:
                return port.port
    if any_tcp and tcp:
        return tcp[0].port
    return None


def _candidates(
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
            chosen.append(f"{service.meta.namespace}/{service.meta.name}")
            candidate = _candidate(
                "ingress",
                index=index,
                tailnet=tailnet,
                service=service,
                host_pattern=ingress.host_pattern,
                path_pattern=ingress.path_prefix,
                port=port,
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
            if not _is_egress_target(service):
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


def _resolve(
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


def _dns_policy(service: cluster.ServiceSnapshot) -> dict[str, str]:
    """The Service's DNS policy flags (`tailwire.dev/public`, `tailwire.dev/split-horizon`,
    as label or annotation), carried to its route where the dnsupdater reads them."""
    meta = service.meta
    return {
        key: meta.annotations.get(key, meta.labels.get(key, ""))
        for key in (labels.PUBLIC, labels.SPLIT_HORIZON)
        if key in meta.annotations or key in meta.labels
    }


def _route_meta(
    gateway: tailscalegateway.TailscaleGateway, *, candidate: Candidate, component: str
) -> dict[str, Any]:
    meta = _base_meta(gateway, candidate=candidate, component=component)
    policy = _dns_policy(candidate.service) if candidate.direction == "ingress" else {}
    if policy:
        meta["annotations"] = policy
    return meta


def _base_meta(
    gateway: tailscalegateway.TailscaleGateway, *, candidate: Candidate, component: str
) -> dict[str, Any]:
    return {
        "name": naming.route_name(
            gateway=gateway.metadata.name,
            tailnet=candidate.tailnet.name,
            service=candidate.service.meta.name,
            direction=candidate.direction,
        ),
        "namespace": candidate.service.meta.namespace,
        "labels": {
            **naming.owner_labels(gateway, component=component),
            labels.TAILNET: naming.short(candidate.tailnet.name),
            naming.SERVICE: candidate.service.meta.name,
        },
    }


def _parent(target: stack.Target, *, section: str | None) -> dict[str, Any]:
    parent: dict[str, Any] = {
        "group": naming.GATEWAY_GROUP,
        "kind": "Gateway",
        "name": target.name,
        "namespace": target.namespace,
    }
    if section is not None:
        parent["sectionName"] = section
    return parent


def _ingress_objects(
    gateway: tailscalegateway.TailscaleGateway, *, candidate: Candidate, target: stack.Target
) -> list[Manifest]:
    ingress = candidate.ingress
    if ingress is None:
        return []
    parents = [_parent(target, section=target.ingress_section)]
    for extra in ingress.additional_parent_refs:
        ref = extra.dump()
        ref.setdefault("namespace", candidate.service.meta.namespace)
        parents.append(ref)
    backend: dict[str, Any] = {
        "group": "",
        "kind": "Service",
        "name": candidate.service.meta.name,
        "port": candidate.port,
    }
    if ingress.default_backend is not None:
        backend["weight"] = ingress.default_backend.weight
    rule: dict[str, Any] = {"matches": [{"path": {"type": "PathPrefix", "value": candidate.path}}]}
    if ingress.filters:
        rule["filters"] = [_filter(f, candidate=candidate) for f in ingress.filters]
    rule["backendRefs"] = [backend]
    route = {
        "apiVersion": naming.GATEWAY_API,
        "kind": "HTTPRoute",
        "metadata": _route_meta(gateway, candidate=candidate, component=naming.COMPONENT_INGRESS),
        "spec": {"parentRefs": parents, "hostnames": [candidate.host], "rules": [rule]},
    }
    health = ingress.default_backend.health_check if ingress.default_backend else None
    spec = policies.traffic_policy_spec(gateway, health_check=health)
    out: list[Manifest] = [route]
    if spec:
        out.append(
            policies.traffic_policy(
                route=route,
                spec=spec,
                labels=naming.owner_labels(gateway, component=naming.COMPONENT_POLICY),
            )
        )
    return out


def _filter(
    route_filter: tailscalegateway.HTTPRouteFilter, *, candidate: Candidate
) -> dict[str, Any]:
    """The filter as Gateway API wants it; header values get the seed's HTML-entity braces
    read as braces and {service}/{namespace}/{tailnet} filled (anything else stays literal)."""
    body = route_filter.dump()
    for key in ("requestHeaderModifier", "responseHeaderModifier"):
        modifier = body.get(key)
        if not modifier:
            continue
        for verb in ("set", "add"):
            for header in modifier.get(verb, []):
                header["value"] = _fill(templates.normalize(header["value"]), candidate)
        body[key] = {verb: items for verb, items in modifier.items() if items}
    return body


def _fill(value: str, candidate: Candidate) -> str:
    values = {
        "{service}": candidate.service.meta.name,
        "{namespace}": candidate.service.meta.namespace or "",
        "{tailnet}": candidate.tailnet.name,
    }
    for placeholder, replacement in values.items():
        value = value.replace(placeholder, replacement)
    return value


def _egress_objects(
    gateway: tailscalegateway.TailscaleGateway, *, candidate: Candidate, target: stack.Target
) -> list[Manifest]:
    egress = candidate.egress
    if egress is None:
        return []
    annotations = candidate.service.meta.annotations
    fqdn = annotations.get(naming.TAILNET_FQDN)
    meta = _route_meta(gateway, candidate=candidate, component=naming.COMPONENT_EGRESS)
    endpoint: dict[str, Any] = (
        {"fqdn": {"hostname": fqdn.rstrip("."), "port": candidate.port}}
        if fqdn
        else {"ip": {"address": annotations[naming.TAILNET_IP], "port": candidate.port}}
    )
    backend = {
        "apiVersion": naming.ENVOY_API,
        "kind": "Backend",
        "metadata": copy.deepcopy(meta),
        "spec": {"endpoints": [endpoint]},
    }
    backend_ref = {
        "group": naming.ENVOY_GROUP,
        "kind": "Backend",
        "name": meta["name"],
        "port": candidate.port,
    }
    values = {
        "service": candidate.service.meta.name,
        "namespace": candidate.service.meta.namespace or "",
        "tailnet": candidate.tailnet.name,
    }
    rules: list[dict[str, Any]] = []
    covered = False
    for rewrite in egress.rewrite_rules:
        source = templates.expand(rewrite.from_, **values)
        covered = covered or source == candidate.path
        url_rewrite: dict[str, Any] = {
            "path": {
                "type": "ReplacePrefixMatch",
                "replacePrefixMatch": templates.expand(rewrite.to, **values),
            }
        }
        if fqdn:
            url_rewrite["hostname"] = fqdn.rstrip(".")
        rules.append(
            _egress_rule(
                path=source,
                filters=[{"type": "URLRewrite", "urlRewrite": url_rewrite}],
                backend_ref=backend_ref,
                timeout=egress.timeout,
            )
        )
    if not covered:
        filters = (
            [{"type": "URLRewrite", "urlRewrite": {"hostname": fqdn.rstrip(".")}}] if fqdn else []
        )
        rules.append(
            _egress_rule(
                path=candidate.path,
                filters=filters,
                backend_ref=backend_ref,
                timeout=egress.timeout,
            )
        )
    route = {
        "apiVersion": naming.GATEWAY_API,
        "kind": "HTTPRoute",
        "metadata": meta,
        "spec": {
            "parentRefs": [_parent(target, section=target.egress_section)],
            "hostnames": [candidate.host],
            "rules": rules,
        },
    }
    out: list[Manifest] = [backend, route]
    spec = policies.traffic_policy_spec(gateway, retry=egress.retry_policy)
    if spec:
        out.append(
            policies.traffic_policy(
                route=route,
                spec=spec,
                labels=naming.owner_labels(gateway, component=naming.COMPONENT_POLICY),
            )
        )
    return out


def _egress_rule(
    *,
    path: str,
    filters: list[dict[str, Any]],
    backend_ref: dict[str, Any],
    timeout: str | None,
) -> dict[str, Any]:
    rule: dict[str, Any] = {"matches": [{"path": {"type": "PathPrefix", "value": path}}]}
    if filters:
        rule["filters"] = filters
    rule["backendRefs"] = [dict(backend_ref)]
    if timeout:
        rule["timeouts"] = {"request": timeout}
    return rule
