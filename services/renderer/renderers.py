"""The computations `tailwire render` runs, in output order.

Extension point: a computation is a `domain.Renderer` (a function of `domain.RenderInput`
returning `domain.Rendered`). The ingress side (TailscaleGateway, `ingress/`) adds its own
function to `RENDERERS` below; nothing else needs to change for `tailwire render` to print
its manifests. Must not: do I/O.
"""

from __future__ import annotations

from tailwire.services.renderer import domain, tailnets
from tailwire.services.renderer.egress import manifests, options, rendering
from tailwire.services.renderer.ingress import computation as ingress
from tailwire.shared.k8s import labels


def egress_prune_scopes(*, namespace: str) -> tuple[domain.PruneScope, ...]:
    selector = {labels.MANAGED_BY: labels.MANAGED_BY_VALUE, labels.COMPONENT: manifests.COMPONENT}
    return (
        domain.PruneScope(api_version="v1", kind="ConfigMap", namespace=namespace, labels=selector),
        domain.PruneScope(
            api_version="apps/v1", kind="DaemonSet", namespace=namespace, labels=selector
        ),
    )


def render_egress(source: domain.RenderInput, /) -> domain.Rendered:
    """EgressGroups: gateway manifests, Node labels, and one NodePlan document per node."""
    opts = options.Options(
        gateway_namespace=source.gateway_namespace,
        cluster_cidrs=source.cluster_cidrs,
        cluster_name=source.cluster_name,
        gateway_image=source.gateway_image,
    )
    result = rendering.render_egress(view=source.view, opts=opts)
    return domain.Rendered(
        manifests=tuple(result.manifests),
        prune=egress_prune_scopes(namespace=source.gateway_namespace),
        documents=tuple(rendering.plan_document(p) for p in result.plans.values()),
    )


RENDERERS: tuple[domain.Renderer, ...] = (
    render_egress,
    ingress.render_ingress,
    tailnets.render_tailnets,
)


def live() -> tuple[domain.Renderer, ...]:
    """What the running renderer runs besides egress (which it drives itself, with plans,
    keys and acks): their manifests are applied and pruned, their statuses written."""
    return tuple(r for r in RENDERERS if r is not render_egress)
