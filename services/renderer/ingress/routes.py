"""Route generation: route candidates -> HTTPRoutes (and Backends, policies).

Ingress (tailnet clients -> cluster Services): an HTTPRoute per winning candidate on the
gateway (plus `additionalParentRefs`), hostname from `hostPattern`, `pathPrefix`, default
backend weight and `filters`. Egress (cluster clients -> tailnet hosts): an Envoy Gateway
`Backend`, an HTTPRoute with the egress hostname, `pathPrefix` and `rewriteRules`
(URLRewrite) and `timeout`, and the retry policy. Which Services are candidates and which
wins a hostname is `candidates`' business. Pure, no I/O.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

from tailwire.services.renderer.ingress import candidates, findings, inputs, naming, policies, stack
from tailwire.shared.events import cluster
from tailwire.shared.k8s import labels
from tailwire.shared.resources import tailscalegateway, templates

Manifest = dict[str, Any]
Candidate = candidates.Candidate


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
    found_all: list[Candidate] = []
    selected: dict[str, tuple[str, ...]] = {}
    for index, tailnet in enumerate(gateway.spec.tailnets):
        found, chosen, problems = candidates.candidates_of(
            gateway, index=index, snapshots=snapshots
        )
        found_all += found
        selected[tailnet.name] = chosen
        notes += problems
    winners, conflict_notes = candidates.resolve(gateway, candidates=found_all, snapshots=snapshots)
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
