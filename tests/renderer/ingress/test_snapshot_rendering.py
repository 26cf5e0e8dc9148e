"""From the bus's raw snapshot to Rendered, and the renderer computation that `tailwire
render` and the running renderer share: invalid specs name the field, render nothing and
prune nothing; valid ones carry prune scopes by owner label, a status document and the
cleanup finalizer; one being deleted gets the prune scopes of all it owns and lets go."""

from __future__ import annotations

import datetime

from tailwire.services.renderer import domain, view
from tailwire.services.renderer.ingress import computation, rendering
from tailwire.shared.events import cluster
from tests.renderer.ingress import support


def _snapshot(spec: dict[str, object]) -> cluster.TailscaleGatewaySnapshot:
    return cluster.TailscaleGatewaySnapshot(
        meta=cluster.Meta(uid="u", namespace="apps", name="gw", generation=4),
        api_version="gateway.tailscale.com/v1alpha1",
        spec=spec,
    )


def test_an_invalid_raw_spec_gets_ready_false_naming_the_field() -> None:
    bad = support.spec(support.tailnet_entry("a", host="{nope}.example.com"))
    snaps = support.snapshots(support.service("api"))
    rendered = rendering.render_snapshot(
        _snapshot(bad),
        services=snaps.services,
        gateways=snaps.gateways,
        tailnets=snaps.tailnets,
    )
    assert rendered.manifests == ()
    (ready,) = rendered.status.conditions
    assert (ready.status, ready.reason, ready.observed_generation) == ("False", "InvalidSpec", 4)
    assert "spec.tailnets[0].routeGeneration.ingress.hostPattern" in ready.message
    assert "unknown placeholder {nope}" in ready.message


def _view(*snapshots: object) -> view.ClusterView:
    cluster_view = view.ClusterView()
    for snapshot in snapshots:
        cluster_view.apply(snapshot)
    return cluster_view


def test_the_computation_renders_every_tailscale_gateway_in_the_view() -> None:
    good = _snapshot(support.spec(support.tailnet_entry("a", host="{service}.example.com")))
    snaps = support.snapshots(support.service("api"))
    source = domain.RenderInput(
        view=_view(good, *snaps.services, *snaps.gateways, *snaps.tailnets),
        cluster_cidrs=("10.244.0.0/16",),
        gateway_namespace="tailwire-system",
    )
    result = computation.render_ingress(source)
    assert [m["kind"] for m in result.manifests] == ["HTTPRoute"]
    (status_document,) = result.documents
    assert status_document["kind"] == "TailscaleGateway"
    assert status_document["status"]["conditions"][0]["type"] == "Ready"
    ((reference, patch),) = result.statuses
    assert reference["metadata"] == {"name": "gw", "namespace": "apps"}
    assert patch == status_document["status"]
    assert {scope.kind for scope in result.prune} >= {"HTTPRoute", "Backend", "Gateway"}
    assert all(
        scope.labels["tailwire.dev/owner-name"] == "gw" and scope.namespace is None
        for scope in result.prune
    )


def test_the_computation_prunes_nothing_for_an_invalid_gateway() -> None:
    bad = _snapshot({"gatewayRef": {"kind": "Gateway", "name": "edge"}, "tailnets": []})
    source = domain.RenderInput(
        view=_view(bad), cluster_cidrs=(), gateway_namespace="tailwire-system"
    )
    result = computation.render_ingress(source)
    assert result.manifests == ()
    assert result.prune == ()
    (status_document,) = result.documents
    assert "spec.tailnets" in status_document["status"]["conditions"][0]["message"]


def test_two_gateways_never_render_the_same_object_or_hostname() -> None:
    stack = {"wildcardDomain": "example.com", "issuerRef": {"name": "le"}}
    first = _snapshot(
        support.spec(support.tailnet_entry("a", host="{service}.example.com"), stack=stack)
    )
    second = cluster.TailscaleGatewaySnapshot(
        meta=cluster.Meta(uid="u2", namespace="apps", name="other", generation=1),
        api_version="gateway.tailscale.com/v1alpha1",
        spec=support.spec(support.tailnet_entry("a", host="{service}.example.com"), stack=stack),
    )
    snaps = support.snapshots(support.service("api"), gateways=())
    source = domain.RenderInput(
        view=_view(second, first, *snaps.services, *snaps.tailnets, *snaps.namespaces),
        cluster_cidrs=(),
        gateway_namespace="tailwire-system",
    )
    result = computation.render_ingress(source)
    keys = [rendering.object_key(m) for m in result.manifests]
    assert len(keys) == len(set(keys))
    hosts = [m["spec"]["hostnames"][0] for m in result.manifests if m["kind"] == "HTTPRoute"]
    assert hosts == ["api.example.com"]
    owners = {m["metadata"]["labels"]["tailwire.dev/owner-name"] for m in result.manifests}
    assert owners == {"gw"}  # apps/gw sorts first and keeps everything
    statuses = {d["metadata"]["name"]: d["status"] for d in result.documents}
    degraded = {c["type"]: c for c in statuses["other"]["conditions"]}["Degraded"]
    assert degraded["reason"] == "PriorityConflict"
    assert (
        "GatewayClass tailscale is already rendered by TailscaleGateway apps/gw"
        in (degraded["message"])
    )
    assert "api.example.com is already served by HTTPRoute apps/gw-a-api" in degraded["message"]


def test_a_deleted_gateways_objects_get_prune_scopes() -> None:
    left_over = cluster.HTTPRouteSnapshot(
        meta=cluster.Meta(
            uid="r",
            namespace="apps",
            name="gone-a-api",
            labels={
                "app.kubernetes.io/managed-by": "tailwire",
                "tailwire.dev/owner-kind": "TailscaleGateway",
                "tailwire.dev/owner-name": "gone",
                "tailwire.dev/owner-namespace": "apps",
            },
        ),
        hostnames=("api.example.com",),
    )
    source = domain.RenderInput(
        view=_view(left_over), cluster_cidrs=(), gateway_namespace="tailwire-system"
    )
    result = computation.render_ingress(source)
    assert result.manifests == ()
    assert {s.labels["tailwire.dev/owner-name"] for s in result.prune} == {"gone"}
    assert "HTTPRoute" in {s.kind for s in result.prune}


def _deleting(snapshot: cluster.TailscaleGatewaySnapshot) -> cluster.TailscaleGatewaySnapshot:
    meta = snapshot.meta.model_copy(
        update={
            "deletion_timestamp": datetime.datetime(2026, 11, 22, tzinfo=datetime.UTC),
            "finalizers": ("example.com/theirs", "tailwire.dev/cleanup"),
        }
    )
    return snapshot.model_copy(update={"meta": meta})


def test_a_live_gateway_gets_the_cleanup_finalizer_once() -> None:
    good = _snapshot(support.spec(support.tailnet_entry("a", host="{service}.example.com")))
    snaps = support.snapshots(support.service("api"))

    def finalizers(
        snapshot: cluster.TailscaleGatewaySnapshot,
    ) -> tuple[tuple[domain.Manifest, tuple[str, ...]], ...]:
        source = domain.RenderInput(
            view=_view(snapshot, *snaps.services, *snaps.gateways, *snaps.tailnets),
            cluster_cidrs=(),
            gateway_namespace="tailwire-system",
        )
        return computation.render_ingress(source).finalizers

    ((reference, wanted),) = finalizers(good)
    assert reference["metadata"] == {"name": "gw", "namespace": "apps"}
    assert wanted == ("tailwire.dev/cleanup",)
    has_it = good.model_copy(
        update={"meta": good.meta.model_copy(update={"finalizers": ("tailwire.dev/cleanup",)})}
    )
    assert finalizers(has_it) == ()


def test_a_gateway_being_deleted_prunes_everything_it_owns_then_lets_go() -> None:
    deleting = _deleting(
        _snapshot(support.spec(support.tailnet_entry("a", host="{service}.example.com")))
    )
    snaps = support.snapshots(support.service("api"))
    source = domain.RenderInput(
        view=_view(deleting, *snaps.services, *snaps.gateways, *snaps.tailnets),
        cluster_cidrs=(),
        gateway_namespace="tailwire-system",
    )
    result = computation.render_ingress(source)
    assert result.manifests == ()
    assert result.statuses == ()
    # Every kind it may have created, the unmirrored ones (GatewayClass, policies) included.
    assert {(s.api_version, s.kind) for s in result.prune} == set(computation.OWNED_KINDS)
    assert {s.labels["tailwire.dev/owner-name"] for s in result.prune} == {"gw"}
    ((reference, kept),) = result.finalizers
    assert reference["metadata"] == {"name": "gw", "namespace": "apps"}
    assert kept == ("example.com/theirs",)


def test_a_status_summary_for_the_bus() -> None:
    good = _snapshot(support.spec(support.tailnet_entry("a", host="{service}.example.com")))
    snaps = support.snapshots(support.service("api"))
    _, rendered = computation.render_one(good, snapshots=snaps)
    subject, summary = computation.summary_of(good, rendered=rendered)
    assert subject == "tailwire.v1.status.tailscalegateway.apps.gw"
    assert summary.ready
    assert summary.details["hostnames"] == ["api.example.com"]
    assert [c.type for c in summary.conditions] == ["Ready", "TailnetsReady", "Degraded"]
