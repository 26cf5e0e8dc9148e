"""Two tailnets generating the same hostname: the higher priority wins, then the earlier
tailnet; the loser gets no route and is reported in status. Hostnames served by HTTPRoutes
tailwire does not own are left alone."""

from __future__ import annotations

from tailwire.services.renderer.ingress import findings, rendering
from tailwire.shared.events import cluster
from tests.renderer.ingress import support

SHARED = "{service}.example.com"


def _routes(rendered: rendering.Rendered) -> dict[str, str]:
    """hostname -> tailnet label of the route serving it."""
    return {
        r["spec"]["hostnames"][0]: r["metadata"]["labels"]["tailwire.dev/tailnet"]
        for r in support.of_kind(rendered, "HTTPRoute")
    }


def test_the_higher_priority_tailnet_wins_whatever_its_position() -> None:
    gw = support.gateway(
        support.spec(
            support.tailnet_entry("a", host=SHARED, priority=50),
            support.tailnet_entry("b", host=SHARED, priority=100),
        )
    )
    rendered = support.render(gw, support.snapshots(support.service("api")))
    assert _routes(rendered) == {"api.example.com": "b"}
    (conflict,) = [p for p in rendered.problems if p.category is findings.Category.CONFLICT]
    assert conflict.field == "spec.tailnets[0].priority"
    assert "tailnet b (priority 100" in conflict.message
    assert "wins over tailnet a (priority 50" in conflict.message
    degraded = support.condition(rendered, "Degraded")
    assert (degraded.status, degraded.reason) == ("True", "PriorityConflict")
    assert "api.example.com" in degraded.message
    counts = {t.name: t.routes_generated for t in rendered.status.tailnets}
    assert counts == {"a": 0, "b": 1}


def test_equal_priorities_go_to_the_earlier_tailnet() -> None:
    gw = support.gateway(
        support.spec(
            support.tailnet_entry("a", host=SHARED),
            support.tailnet_entry("b", host=SHARED),
        )
    )
    rendered = support.render(gw, support.snapshots(support.service("api")))
    assert _routes(rendered) == {"api.example.com": "a"}


def test_distinct_hosts_do_not_conflict() -> None:
    gw = support.gateway(
        support.spec(
            support.tailnet_entry("a", host="{service}.a.example.com", priority=1),
            support.tailnet_entry("b", host="{service}.b.example.com", priority=2),
        )
    )
    rendered = support.render(gw, support.snapshots(support.service("api")))
    assert _routes(rendered) == {"api.a.example.com": "a", "api.b.example.com": "b"}
    assert support.condition(rendered, "Degraded").status == "False"


def test_same_named_services_in_two_namespaces_collide_without_namespace_in_the_pattern() -> None:
    entry = support.tailnet_entry("a", host=SHARED, namespaces=["apps", "other"])
    rendered = support.render(
        support.gateway(support.spec(entry)),
        support.snapshots(support.service("api"), support.service("api", namespace="other")),
    )
    (route,) = support.of_kind(rendered, "HTTPRoute")
    assert route["metadata"]["namespace"] == "apps"
    (conflict,) = [p for p in rendered.problems if p.category is findings.Category.CONFLICT]
    assert "other/api" in conflict.message


def test_a_hostname_of_a_user_owned_route_is_left_to_it() -> None:
    theirs = cluster.HTTPRouteSnapshot(
        meta=cluster.Meta(uid="u1", namespace="apps", name="hand-written"),
        hostnames=("api.example.com",),
    )
    gw = support.gateway(support.spec(support.tailnet_entry("a", host=SHARED)))
    rendered = support.render(
        gw, support.snapshots(support.service("api"), support.service("web"), routes=(theirs,))
    )
    assert _routes(rendered) == {"web.example.com": "a"}
    (conflict,) = [p for p in rendered.problems if p.category is findings.Category.CONFLICT]
    assert "HTTPRoute apps/hand-written (not tailwire's)" in conflict.message


def test_our_own_previous_route_does_not_block_its_hostname() -> None:
    gw = support.gateway(support.spec(support.tailnet_entry("a", host=SHARED)))
    first = support.render(gw, support.snapshots(support.service("api")))
    (route,) = support.of_kind(first, "HTTPRoute")
    existing = cluster.HTTPRouteSnapshot(
        meta=cluster.Meta(
            uid="u2",
            namespace="apps",
            name=route["metadata"]["name"],
            labels=route["metadata"]["labels"],
        ),
        hostnames=tuple(route["spec"]["hostnames"]),
    )
    again = support.render(gw, support.snapshots(support.service("api"), routes=(existing,)))
    assert again.manifests == first.manifests
