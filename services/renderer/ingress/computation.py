"""The ingress side as one of the renderer's computations (`domain.Renderer`).

Reads TailscaleGateways, TailscaleTailnets, Services, Gateways and HTTPRoutes from the
cluster view and returns, for every TailscaleGateway: its manifests, the prune scopes of the
objects it owns by owner label (none for an invalid spec, so a typo never tears a stack
down), and its status both as a document (`tailwire render`) and as a status patch (the
running renderer), and the cleanup finalizer on it. A TailscaleGateway being deleted gets
nothing but the prune scopes of everything it owns and its finalizer list without ours: the
renderer writes that list only after the pruning went through, so the object goes once its
stack (GatewayClass, EnvoyProxy, Certificate, policies too, which no one else mirrors) is
gone. Objects of gateways that vanished without the finalizer are found by their labels
(`_orphan_scopes`). No wall clock goes into the status: an unchanged cluster gives an unchanged
status, so the renderer writes nothing. Both `tailwire render` and the running renderer use
it. Must not: do I/O.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from tailwire.services.renderer import domain
from tailwire.services.renderer.ingress import inputs, naming, rendering
from tailwire.shared import subjects
from tailwire.shared.events import cluster
from tailwire.shared.events import status as status_events
from tailwire.shared.k8s import labels
from tailwire.shared.resources import tailscalegateway

# Every kind the ingress side may create, for pruning.
OWNED_KINDS = (
    (naming.GATEWAY_API, "GatewayClass"),
    (naming.ENVOY_API, "EnvoyProxy"),
    (naming.CERT_MANAGER_API, "Certificate"),
    (naming.GATEWAY_API, "Gateway"),
    ("v1", "Service"),
    (naming.ENVOY_API, "Backend"),
    (naming.GATEWAY_API, "HTTPRoute"),
    (naming.ENVOY_API, "BackendTrafficPolicy"),
    (naming.ENVOY_API, "ClientTrafficPolicy"),
    (naming.REFERENCE_GRANT_API, "ReferenceGrant"),
)


def _typed(source: domain.RenderInput, kind: subjects.Kind, model: type[Any]) -> list[Any]:
    return [item for item in source.view.of_kind(kind) if isinstance(item, model)]


def snapshots_of(source: domain.RenderInput) -> inputs.Snapshots:
    return inputs.Snapshots.of(
        services=_typed(source, subjects.Kind.SERVICE, cluster.ServiceSnapshot),
        gateways=_typed(source, subjects.Kind.GATEWAY, cluster.GatewaySnapshot),
        tailnets=_typed(source, subjects.Kind.TAILSCALETAILNET, cluster.TailscaleTailnetSnapshot),
        routes=_typed(source, subjects.Kind.HTTPROUTE, cluster.HTTPRouteSnapshot),
        namespaces=_typed(source, subjects.Kind.NAMESPACE, cluster.NamespaceSnapshot),
    )


def prune_scopes(*, namespace: str, name: str) -> tuple[domain.PruneScope, ...]:
    selector = {
        labels.MANAGED_BY: labels.MANAGED_BY_VALUE,
        labels.OWNER_KIND: tailscalegateway.KIND,
        labels.OWNER_NAME: naming.short(name),
        labels.OWNER_NAMESPACE: namespace,
    }
    return tuple(
        domain.PruneScope(api_version=api, kind=kind, namespace=None, labels=dict(selector))
        for api, kind in OWNED_KINDS
    )


def status_reference(snapshot: cluster.TailscaleGatewaySnapshot) -> dict[str, Any]:
    """The object a status document belongs to (apiVersion/kind/metadata)."""
    return {
        "apiVersion": tailscalegateway.API_VERSION,
        "kind": tailscalegateway.KIND,
        "metadata": {"name": snapshot.meta.name, "namespace": snapshot.meta.namespace},
    }


def render_one(
    snapshot: cluster.TailscaleGatewaySnapshot,
    *,
    snapshots: inputs.Snapshots,
    settings: inputs.Settings | None = None,
    claimed: Mapping[rendering.ObjectKey, str] | None = None,
) -> tuple[domain.Rendered, rendering.Rendered]:
    result = rendering.render_snapshot(
        snapshot,
        services=snapshots.services,
        gateways=snapshots.gateways,
        tailnets=snapshots.tailnets,
        routes=snapshots.routes,
        namespaces=snapshots.namespaces,
        settings=settings,
        claimed=claimed,
    )
    status_document = {**status_reference(snapshot), "status": result.status.dump()}
    prune = (
        prune_scopes(namespace=snapshot.meta.namespace or "default", name=snapshot.meta.name)
        if result.valid
        else ()
    )
    return (
        domain.Rendered(
            manifests=result.manifests,
            prune=prune,
            documents=(status_document,),
            statuses=((status_reference(snapshot), result.status.dump()),),
            summaries=(summary_of(snapshot, rendered=result),),
        ),
        result,
    )


def summary_of(
    snapshot: cluster.TailscaleGatewaySnapshot, *, rendered: rendering.Rendered
) -> tuple[str, status_events.StatusSummary]:
    """The status summary for `tailwire.v1.status.tailscalegateway.<ns>.<name>` and its
    subject: conditions plus the counts an integration wants without the Kubernetes API."""
    st = rendered.status
    ready = any(c.type == "Ready" and c.status == "True" for c in st.conditions)
    summary = status_events.StatusSummary(
        kind=str(subjects.Kind.TAILSCALEGATEWAY),
        namespace=snapshot.meta.namespace,
        name=snapshot.meta.name,
        generation=snapshot.meta.generation,
        observed_generation=st.observed_generation,
        ready=ready,
        conditions=domain.bus_conditions(st.conditions),
        details={
            "routeCount": st.gateway_info.route_count if st.gateway_info else 0,
            "listenerCount": st.gateway_info.listener_count if st.gateway_info else 0,
            "hostnames": sorted(
                h
                for m in rendered.manifests
                if m["kind"] == "HTTPRoute"
                for h in m["spec"]["hostnames"]
            ),
            "tailnets": {t.name: t.status for t in st.tailnets},
        },
    )
    return subjects.status(snapshot.ref), summary


def _as_route(manifest: dict[str, Any]) -> cluster.HTTPRouteSnapshot:
    meta = manifest["metadata"]
    return cluster.HTTPRouteSnapshot(
        meta=cluster.Meta(
            uid=f"rendered/{meta['namespace']}/{meta['name']}",
            namespace=meta["namespace"],
            name=meta["name"],
            labels=meta["labels"],
        ),
        hostnames=tuple(manifest["spec"].get("hostnames") or ()),
    )


def render_ingress(source: domain.RenderInput, /) -> domain.Rendered:
    """Every TailscaleGateway in the view, in namespace/name order. A gateway sees the routes
    and objects of the gateways before it, so two of them never render the same hostname or
    the same object (the earlier one keeps it, the later one reports it), offline too."""
    snapshots = snapshots_of(source)
    gateways = sorted(
        (
            item
            for item in source.view.of_kind(subjects.Kind.TAILSCALEGATEWAY)
            if isinstance(item, cluster.TailscaleGatewaySnapshot)
        ),
        key=lambda g: (g.meta.namespace or "", g.meta.name),
    )
    claimed: dict[rendering.ObjectKey, str] = {}
    settings = inputs.Settings(tailnet_checks=source.tailnet_checks)
    results = []
    for snapshot in gateways:
        if snapshot.meta.deletion_timestamp is not None:
            results.append(_finalizing(snapshot))
            continue
        result, _ = render_one(snapshot, snapshots=snapshots, settings=settings, claimed=claimed)
        results.append(dataclasses.replace(result, finalizers=_keeping_finalizer(snapshot)))
        owner = f"TailscaleGateway {snapshot.meta.namespace}/{snapshot.meta.name}"
        for manifest in result.manifests:
            claimed.setdefault(rendering.object_key(manifest), owner)
        rendered_routes = [_as_route(m) for m in result.manifests if m["kind"] == "HTTPRoute"]
        if rendered_routes:
            snapshots = dataclasses.replace(snapshots, routes=(*snapshots.routes, *rendered_routes))
    results.append(domain.Rendered(prune=_orphan_scopes(source, gateways=gateways)))
    return domain.combine(results)


def _keeping_finalizer(
    snapshot: cluster.TailscaleGatewaySnapshot,
) -> tuple[tuple[domain.Manifest, tuple[str, ...]], ...]:
    """Our finalizer added to a live TailscaleGateway that lacks it (nothing if it has it)."""
    if labels.FINALIZER in snapshot.meta.finalizers:
        return ()
    return ((status_reference(snapshot), (*snapshot.meta.finalizers, labels.FINALIZER)),)


def _finalizing(snapshot: cluster.TailscaleGatewaySnapshot) -> domain.Rendered:
    """A TailscaleGateway being deleted: prune all it owns, then let it go."""
    prune = prune_scopes(namespace=snapshot.meta.namespace or "default", name=snapshot.meta.name)
    if labels.FINALIZER not in snapshot.meta.finalizers:
        return domain.Rendered(prune=prune)
    kept = tuple(f for f in snapshot.meta.finalizers if f != labels.FINALIZER)
    return domain.Rendered(prune=prune, finalizers=((status_reference(snapshot), kept),))


def _orphan_scopes(
    source: domain.RenderInput, *, gateways: list[cluster.TailscaleGatewaySnapshot]
) -> tuple[domain.PruneScope, ...]:
    """Prune scopes of TailscaleGateways that are gone but whose objects are still mirrored
    (routes, Services, Gateways carry the owner labels): a deleted gateway's stack goes too."""
    present = {(g.meta.namespace or "default", naming.short(g.meta.name)) for g in gateways}
    orphans: set[tuple[str, str]] = set()
    for kind in (subjects.Kind.HTTPROUTE, subjects.Kind.SERVICE, subjects.Kind.GATEWAY):
        for item in source.view.of_kind(kind):
            owner = naming.owner_key(item.meta.labels)
            if owner is not None and owner not in present:
                orphans.add(owner)
    return tuple(
        scope
        for namespace, name in sorted(orphans)
        for scope in prune_scopes(namespace=namespace, name=name)
    )
