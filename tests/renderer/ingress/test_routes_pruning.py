"""Pruning: the route (and policy) of a Service that disappeared is listed for deletion;
objects without this TailscaleGateway's owner labels never are; an invalid spec prunes
nothing, so a typo never tears a stack down."""

from __future__ import annotations

from typing import Any

from tailwire.services.renderer.ingress import rendering
from tailwire.shared.events import cluster
from tests.renderer.ingress import support


def _as_snapshot(manifest: dict[str, Any]) -> cluster.HTTPRouteSnapshot:
    meta = manifest["metadata"]
    return cluster.HTTPRouteSnapshot(
        meta=cluster.Meta(
            uid=f"uid-{meta['name']}",
            namespace=meta["namespace"],
            name=meta["name"],
            labels=meta["labels"],
        ),
        hostnames=tuple(manifest["spec"]["hostnames"]),
    )


def _gateway() -> Any:
    return support.gateway(
        support.spec(
            support.tailnet_entry("a", host="{service}.example.com"),
            loadBalancing={"strategy": "random"},
        )
    )


def test_the_route_of_a_vanished_service_is_pruned() -> None:
    gw = _gateway()
    before = support.render(gw, support.snapshots(support.service("api"), support.service("web")))
    existing = [_as_snapshot(m) for m in support.of_kind(before, "HTTPRoute")]
    after = support.render(
        gw,
        support.snapshots(
            support.service("api"), support.service("web", deleted=True), routes=existing
        ),
    )
    hosts = [r["spec"]["hostnames"] for r in support.of_kind(after, "HTTPRoute")]
    assert hosts == [["api.example.com"]]
    stale = rendering.prune(gw, rendered=after, existing=existing)
    assert [(s.kind, s.namespace, s.name) for s in stale] == [("HTTPRoute", "apps", "gw-a-web")]
    # its BackendTrafficPolicy is gone from the desired set too
    policies = [p["metadata"]["name"] for p in support.of_kind(after, "BackendTrafficPolicy")]
    assert policies == ["gw-a-api"]


def test_objects_tailwire_does_not_own_are_never_pruned() -> None:
    gw = _gateway()
    theirs = cluster.HTTPRouteSnapshot(
        meta=cluster.Meta(uid="u", namespace="apps", name="mine", labels={"team": "x"}),
        hostnames=("other.example.com",),
    )
    other_owner = cluster.HTTPRouteSnapshot(
        meta=cluster.Meta(
            uid="v",
            namespace="apps",
            name="someone-elses",
            labels={
                "app.kubernetes.io/managed-by": "tailwire",
                "tailwire.dev/owner-kind": "TailscaleGateway",
                "tailwire.dev/owner-name": "another",
                "tailwire.dev/owner-namespace": "apps",
            },
        ),
        hostnames=("x.example.com",),
    )
    rendered = support.render(gw, support.snapshots())
    assert rendering.prune(gw, rendered=rendered, existing=[theirs, other_owner]) == []


def test_an_invalid_spec_renders_nothing_and_prunes_nothing() -> None:
    gw = support.gateway(
        support.spec(
            support.tailnet_entry("a", host="{service}.example.com"),
            stack={"wildcardDomain": "example.com"},
        )  # certificate needs an issuerRef
    )
    before = support.render(_gateway(), support.snapshots(support.service("api")))
    existing = [_as_snapshot(m) for m in support.of_kind(before, "HTTPRoute")]
    rendered = support.render(gw, support.snapshots(support.service("api"), routes=existing))
    assert rendered.manifests == ()
    assert not rendered.valid
    ready = support.condition(rendered, "Ready")
    assert (ready.status, ready.reason) == ("False", "InvalidSpec")
    assert "spec.stack.issuerRef" in ready.message
    assert rendering.prune(gw, rendered=rendered, existing=existing) == []
