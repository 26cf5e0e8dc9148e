"""The ingress side's entry point: one TailscaleGateway plus snapshots -> Rendered.

`render_gateway` returns every manifest tailwire should apply for the resource (in a stable
order, byte-for-byte deterministic when `settings.now` is None), its status, and the
findings behind that status. An invalid spec renders nothing and gets `Ready=False` with the
field named. `prune` says which existing objects the resource owns but no longer wants.
Pure: the renderer's handlers and adapters (or `tailwire render`) do the I/O.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from tailwire.services.renderer.ingress import (
    findings,
    inputs,
    naming,
    policies,
    stack,
    status,
)

# Aliased: `routes` is also the parameter carrying the existing HTTPRoutes.
from tailwire.services.renderer.ingress import routes as route_generation
from tailwire.shared.events import cluster
from tailwire.shared.resources import loading, tailscalegateway

Manifest = dict[str, Any]
ObjectKey = tuple[str, str, str, str]
_STACK_KINDS = {"GatewayClass", "EnvoyProxy", "Certificate", "Gateway", "Service"}
# Apply order: what others refer to comes first.
_KIND_ORDER = (
    "GatewayClass",
    "EnvoyProxy",
    "Certificate",
    "Gateway",
    "Service",
    "Backend",
    "HTTPRoute",
    "BackendTrafficPolicy",
    "ClientTrafficPolicy",
    "ReferenceGrant",
)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Rendered:
    manifests: tuple[Manifest, ...]
    status: tailscalegateway.TailscaleGatewayStatus
    problems: tuple[findings.Finding, ...]

    @property
    def valid(self) -> bool:
        return not any(p.category is findings.Category.INVALID for p in self.problems)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Stale:
    """An object the TailscaleGateway owns that is no longer desired: delete it."""

    api_version: str
    kind: str
    namespace: str | None
    name: str


def render_gateway(
    gateway: tailscalegateway.TailscaleGateway,
    *,
    services: Iterable[cluster.ServiceSnapshot],
    gateways: Iterable[cluster.GatewaySnapshot],
    tailnets: Iterable[cluster.TailscaleTailnetSnapshot],
    routes: Iterable[cluster.HTTPRouteSnapshot] = (),
    namespaces: Iterable[cluster.NamespaceSnapshot] = (),
    settings: inputs.Settings | None = None,
    claimed: Mapping[ObjectKey, str] | None = None,
) -> Rendered:
    """Manifests, status and findings of one valid TailscaleGateway model.

    `routes` are the existing HTTPRoutes (whose hostnames are respected); `claimed` the objects
    another TailscaleGateway already renders (key -> who), which this one leaves alone and
    reports (two gateways managing one GatewayClass, say)."""
    settings = settings or inputs.Settings()
    snapshots = inputs.Snapshots.of(
        services=services, gateways=gateways, tailnets=tailnets, routes=routes,
        namespaces=namespaces,
    )  # fmt: skip
    invalid = [
        findings.finding(category=findings.Category.INVALID, field=p.field, message=p.message)
        for p in tailscalegateway.check(gateway)
    ]
    if invalid:
        return _invalid(generation=gateway.metadata.generation, problems=invalid, settings=settings)
    built = stack.render_stack(gateway, snapshots=snapshots)
    generated = route_generation.render_routes(gateway, snapshots=snapshots, target=built.target)
    mtls, mtls_notes = policies.mtls_objects(
        gateway, gateway_namespace=built.target.namespace, gateway_name=built.target.name
    )
    notes = [
        *built.findings,
        *generated.findings,
        *mtls_notes,
        *policies.balancing_findings(gateway),
        *policies.security_findings(gateway),
    ]
    invalid = [note for note in notes if note.category is findings.Category.INVALID]
    if invalid:
        return _invalid(generation=gateway.metadata.generation, problems=invalid, settings=settings)
    manifests = []
    own = naming.namespace_of(gateway)
    refused: dict[str, list[str]] = {}
    for manifest in sorted([*built.manifests, *generated.manifests, *mtls], key=_order):
        target = manifest["metadata"].get("namespace")
        if target and not snapshots.accepts(target=target, source=own):
            refused.setdefault(target, []).append(
                f"{manifest['kind']} {manifest['metadata']['name']}"
            )
            continue
        owner = (claimed or {}).get(object_key(manifest))
        if owner is None:
            manifests.append(manifest)
            continue
        meta = manifest["metadata"]
        where = f"{meta['namespace']}/{meta['name']}" if meta.get("namespace") else meta["name"]
        notes.append(
            findings.finding(
                category=findings.Category.CONFLICT,
                field="spec.stack" if manifest["kind"] in _STACK_KINDS else "spec",
                message=f"{manifest['kind']} {where} is already rendered by {owner}; left to it",
            )
        )
    for target, what in sorted(refused.items()):
        notes.append(
            findings.finding(
                category=findings.Category.NOT_PERMITTED,
                field=_field_writing_into(gateway, target),
                message=f"namespace {target} has not accepted writes from namespace {own} "
                f"(not written: {', '.join(what)}); its admin consents with the annotation "
                f"{inputs.ACCEPT_FROM}: {own} on Namespace {target}",
            )
        )
    return Rendered(
        manifests=tuple(manifests),
        status=status.build_status(
            gateway,
            built=built,
            generated=generated,
            notes=notes,
            snapshots=snapshots,
            settings=settings,
        ),
        problems=tuple(notes),
    )


def _field_writing_into(gateway: tailscalegateway.TailscaleGateway, target: str) -> str:
    """The setting that made this TailscaleGateway write into namespace `target`."""
    spec = gateway.spec
    if spec.gateway_ref.namespace == target:
        return "spec.gatewayRef.namespace"
    if spec.stack is not None and spec.stack.envoy_namespace == target:
        return "spec.stack.envoyNamespace"
    security = spec.security
    mtls = security.mtls if security is not None else None
    ref = mtls.certificate_ref if mtls is not None else None
    if ref is not None and ref.namespace == target:
        return "spec.security.mtls.certificateRef.namespace"
    for index, tailnet in enumerate(spec.tailnets):
        generation = tailnet.route_generation
        ingress = generation.ingress if generation else None
        if ingress is not None and target in (ingress.namespaces or ()):
            return f"spec.tailnets[{index}].routeGeneration.ingress.namespaces"
    return "spec"


def object_key(manifest: Manifest) -> ObjectKey:
    """(apiVersion, kind, namespace or "", name): the identity of an applied object."""
    meta = manifest["metadata"]
    return (manifest["apiVersion"], manifest["kind"], meta.get("namespace") or "", meta["name"])


def render_snapshot(
    snapshot: cluster.TailscaleGatewaySnapshot,
    *,
    services: Iterable[cluster.ServiceSnapshot],
    gateways: Iterable[cluster.GatewaySnapshot],
    tailnets: Iterable[cluster.TailscaleTailnetSnapshot],
    routes: Iterable[cluster.HTTPRouteSnapshot] = (),
    namespaces: Iterable[cluster.NamespaceSnapshot] = (),
    settings: inputs.Settings | None = None,
    claimed: Mapping[ObjectKey, str] | None = None,
) -> Rendered:
    """Validate the raw spec of a snapshot, then render it; an invalid spec renders nothing
    and its status names every field."""
    raw = {
        "apiVersion": snapshot.api_version,
        "kind": tailscalegateway.KIND,
        "metadata": {
            "name": snapshot.meta.name,
            "namespace": snapshot.meta.namespace,
            "generation": snapshot.meta.generation,
            "uid": snapshot.meta.uid,
        },
        "spec": snapshot.spec,
    }
    checked = loading.validate_object(raw)
    if isinstance(checked.resource, tailscalegateway.TailscaleGateway):
        return render_gateway(
            checked.resource,
            services=services,
            gateways=gateways,
            tailnets=tailnets,
            routes=routes,
            namespaces=namespaces,
            settings=settings,
            claimed=claimed,
        )
    problems = [
        findings.finding(category=findings.Category.INVALID, field=p.field, message=p.message)
        for p in checked.problems
    ]
    return _invalid(
        generation=snapshot.meta.generation,
        problems=problems,
        settings=settings or inputs.Settings(),
    )


def _invalid(
    *,
    generation: int | None,
    problems: list[findings.Finding],
    settings: inputs.Settings,
) -> Rendered:
    return Rendered(
        manifests=(),
        status=status.invalid_status(generation=generation, problems=problems, settings=settings),
        problems=tuple(problems),
    )


def _order(manifest: Manifest) -> tuple[int, str, str]:
    kind = manifest["kind"]
    rank = _KIND_ORDER.index(kind) if kind in _KIND_ORDER else len(_KIND_ORDER)
    meta = manifest["metadata"]
    return (rank, meta.get("namespace") or "", meta["name"])


def prune(
    gateway: tailscalegateway.TailscaleGateway,
    *,
    rendered: Rendered,
    existing: Iterable[
        cluster.HTTPRouteSnapshot | cluster.ServiceSnapshot | cluster.GatewaySnapshot
    ],
) -> list[Stale]:
    """Existing objects this TailscaleGateway owns (by label) that are no longer desired,
    e.g. the route of a Service that disappeared. Objects without tailwire's owner labels
    are never listed. An invalid render prunes nothing (nothing is applied either)."""
    if not rendered.valid:
        return []
    desired = {
        (m["kind"], m["metadata"].get("namespace"), m["metadata"]["name"])
        for m in rendered.manifests
    }
    api = {
        "httproute": ("HTTPRoute", naming.GATEWAY_API),
        "service": ("Service", "v1"),
        "gateway": ("Gateway", naming.GATEWAY_API),
    }
    stale: list[Stale] = []
    for item in existing:
        if item.deleted or not naming.is_owned_by(item.meta.labels, gateway=gateway):
            continue
        kind, api_version = api[str(item.kind)]
        if (kind, item.meta.namespace, item.meta.name) in desired:
            continue
        stale.append(
            Stale(
                api_version=api_version,
                kind=kind,
                namespace=item.meta.namespace,
                name=item.meta.name,
            )
        )
    return sorted(stale, key=lambda s: (s.kind, s.namespace or "", s.name))
