"""Golden ExternalDNS annotations for the seed's homelab, including split-horizon docs.<zone>."""

from __future__ import annotations

import json

import pytest

from tailwire.services.dnsupdater.domain import exposures, externaldns, records
from tailwire.shared.events import cluster
from tailwire.shared.k8s import labels

from . import golden, snapshots

ALPHA = "external-dns.alpha.kubernetes.io/"
NEW = "external-dns.kubernetes.io/"
ZONE = "sudhanva.me"


def _homelab() -> tuple[
    list[cluster.GatewaySnapshot],
    list[cluster.HTTPRouteSnapshot],
    dict[exposures.GatewayRef, exposures.Exposure],
]:
    gateways = [snapshots.gateway(), snapshots.gateway("envoy-internal", namespace="network")]
    routes = [
        # The seed's split-horizon case: listed in settings, hand-annotated before tailwire.
        snapshots.route(
            "docs",
            namespace="docs",
            hostnames=("docs.sudhanva.me",),
            annotations={ALPHA + "expose": "true", labels.PUBLIC: "true"},
        ),
        snapshots.route(
            "vault",
            namespace="vault",
            hostnames=("vault.sudhanva.me",),
            annotations={labels.PUBLIC: "true"},
        ),
        # Split-horizon by its own annotation.
        snapshots.route(
            "headlamp",
            namespace="headlamp",
            hostnames=("headlamp.sudhanva.me",),
            annotations={labels.SPLIT_HORIZON: "true", ALPHA + "hostname": "headlamp.sudhanva.me"},
        ),
        # tailwire exposed it before; it is no longer public: only tailwire's key goes.
        snapshots.route(
            "grafana",
            namespace="monitoring",
            hostnames=("grafana.sudhanva.me",),
            annotations={
                ALPHA + "expose": "true",
                ALPHA + "ttl": "120",
                labels.DNS_MANAGED_ANNOTATIONS: ALPHA + "expose",
            },
        ),
        # Not on a tailnet Gateway, hand-annotated: never touched.
        snapshots.route(
            "blog",
            namespace="blog",
            hostnames=("blog.sudhanva.me",),
            gateway_name="envoy-internal",
            gateway_namespace="network",
            annotations={ALPHA + "expose": "true"},
        ),
    ]
    by_ref = {
        exposures.GatewayRef(namespace=g.meta.namespace or "", name=g.meta.name): g
        for g in gateways
    }
    exposed = exposures.tailnet_exposures(services=[snapshots.tailscale_service()], gateways=by_ref)
    return gateways, routes, exposed


def _render(patches: list[externaldns.AnnotationPatch]) -> str:
    document = [
        {"kind": p.kind, "namespace": p.namespace, "name": p.name, "patch": p.as_merge_patch()}
        for p in patches
    ]
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


@pytest.mark.parametrize(("prefix", "name"), [(ALPHA, "alpha"), (NEW, "new")])
def test_homelab_annotations_golden(prefix: str, name: str) -> None:
    gateways, routes, exposed = _homelab()
    patches = externaldns.annotation_patches(
        routes=routes,
        gateways=gateways,
        exposed=exposed,
        prefix=prefix,
        split_hostnames=["docs.sudhanva.me"],
    )
    golden.check(f"annotations-{name}.json", _render(patches))


def test_split_horizon_docs_gets_no_expose_but_keeps_its_tailnet_answer() -> None:
    gateways, routes, exposed = _homelab()
    patches = externaldns.annotation_patches(
        routes=routes, gateways=gateways, exposed=exposed, split_hostnames=["docs.sudhanva.me"]
    )
    docs = next(p for p in patches if p.name == "docs")
    assert dict(docs.changes) == {ALPHA + "expose": None}
    served = exposures.served_hostnames(routes=routes, exposures=exposed).hostnames
    tailnet = records.desired_records(zone=ZONE, served=served, ttl=60)
    assert {(r.type, r.value) for r in tailnet if r.name == "docs.sudhanva.me"} == {
        ("A", "100.64.0.10"),
        ("AAAA", "fd7a:115c:a1e0::a"),
    }


def test_applying_the_patches_leaves_nothing_to_do() -> None:
    gateways, routes, exposed = _homelab()

    def patched(meta: cluster.Meta, patch: externaldns.AnnotationPatch | None) -> cluster.Meta:
        annotations = dict(meta.annotations)
        for key, value in patch.changes if patch else ():
            if value is None:
                annotations.pop(key, None)
            else:
                annotations[key] = value
        return meta.model_copy(update={"annotations": annotations})

    patches = {
        (p.namespace, p.name): p
        for p in externaldns.annotation_patches(routes=routes, gateways=gateways, exposed=exposed)
    }
    routes = [
        r.model_copy(
            update={"meta": patched(r.meta, patches.get((r.meta.namespace or "", r.meta.name)))}
        )
        for r in routes
    ]
    gateways = [
        g.model_copy(
            update={"meta": patched(g.meta, patches.get((g.meta.namespace or "", g.meta.name)))}
        )
        for g in gateways
    ]
    assert externaldns.annotation_patches(routes=routes, gateways=gateways, exposed=exposed) == []


def test_gateway_leaving_the_tailnet_loses_only_its_managed_target() -> None:
    gateway = snapshots.gateway()
    meta = gateway.meta.model_copy(
        update={
            "annotations": {
                ALPHA + "target": "gateway-envoy.tail1234.ts.net",
                labels.DNS_MANAGED_ANNOTATIONS: ALPHA + "target",
                "example.com/other": "kept",
            }
        }
    )
    gone = gateway.model_copy(update={"meta": meta})
    (patch,) = externaldns.annotation_patches(routes=[], gateways=[gone], exposed={})
    assert dict(patch.changes) == {ALPHA + "target": None, labels.DNS_MANAGED_ANNOTATIONS: None}
