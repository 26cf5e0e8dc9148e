"""Issue 18, finding 2: two teams' HTTPRoutes claiming one DNS name. The namespace of the
oldest claim owns it (creationTimestamp, then namespace/name); its routes share it, every
other namespace's claim is refused and reported, whatever order the routes arrive in."""

from __future__ import annotations

import datetime

from hypothesis import given
from hypothesis import strategies as st

from tailwire.services.dnsupdater.domain import exposures
from tailwire.services.watcher import domain
from tailwire.shared import subjects
from tailwire.shared.events import cluster

from . import snapshots

T0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
HOST = "www.example.test"


def _exposed() -> dict[exposures.GatewayRef, exposures.Exposure]:
    gateways = [snapshots.gateway("team-a-gw", namespace="team-a"),
                snapshots.gateway("team-b-gw", namespace="team-b")]  # fmt: skip
    services = [
        snapshots.tailscale_service(gateway_name="team-a-gw", gateway_namespace="team-a",
                                    ips=("100.64.0.1",), name="envoy-a"),
        snapshots.tailscale_service(gateway_name="team-b-gw", gateway_namespace="team-b",
                                    ips=("100.64.0.2",), name="envoy-b"),
    ]  # fmt: skip
    by_ref = {exposures.GatewayRef(namespace=g.meta.namespace or "", name=g.meta.name): g
              for g in gateways}  # fmt: skip
    return exposures.tailnet_exposures(services=services, gateways=by_ref)


def _route(name: str, team: str, minutes: int | None) -> cluster.HTTPRouteSnapshot:
    return snapshots.route(
        name,
        hostnames=(HOST,),
        namespace=team,
        gateway_name=f"{team}-gw",
        gateway_namespace=team,
        created=None if minutes is None else T0 + datetime.timedelta(minutes=minutes),
    )


def _addresses(served: exposures.Served) -> set[str]:
    return {ip for e in served.hostnames.get(HOST, ()) for ip in e.ipv4}


ROUTES = [
    _route("web", "team-a", 5),
    _route("api", "team-a", 9),  # the same team, another path on the same host: shares it
    _route("takeover", "team-b", 7),  # later than team-a's first claim: refused
    _route("undated", "team-b", None),
]


def test_the_oldest_claims_namespace_owns_the_name_and_the_others_are_reported() -> None:
    served = exposures.served_hostnames(routes=ROUTES, exposures=_exposed())
    assert _addresses(served) == {"100.64.0.1"}
    assert [str(c) for c in served.conflicts] == [
        f"HTTPRoute team-b/takeover does not get {HOST}: HTTPRoute team-a/web "
        "(namespace team-a) claimed it first",
        f"HTTPRoute team-b/undated does not get {HOST}: HTTPRoute team-a/web "
        "(namespace team-a) claimed it first",
    ]


def test_an_older_claim_of_the_other_team_wins_instead() -> None:
    routes = [*ROUTES, _route("first", "team-b", 1)]
    served = exposures.served_hostnames(routes=routes, exposures=_exposed())
    assert _addresses(served) == {"100.64.0.2"}
    assert {c.loser.name for c in served.conflicts} == {"web", "api"}


def test_at_the_same_moment_the_namespace_name_decides() -> None:
    routes = [_route("x", "team-b", 3), _route("y", "team-a", 3)]
    served = exposures.served_hostnames(routes=routes, exposures=_exposed())
    assert _addresses(served) == {"100.64.0.1"}  # team-a sorts first


@given(st.permutations(ROUTES))
def test_the_winner_does_not_depend_on_the_order_routes_arrive_in(
    routes: list[cluster.HTTPRouteSnapshot],
) -> None:
    reference = exposures.served_hostnames(routes=ROUTES, exposures=_exposed())
    assert exposures.served_hostnames(routes=routes, exposures=_exposed()) == reference


def test_the_watcher_keeps_when_a_route_was_created() -> None:
    snapshot = domain.normalize(
        domain.BY_KIND[subjects.Kind.HTTPROUTE],
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": "web", "namespace": "team-a", "uid": "u1",
                         "resourceVersion": "7", "creationTimestamp": "2026-01-01T00:05:00Z"},
            "spec": {"hostnames": [HOST]},
        },
    )  # fmt: skip
    assert snapshot is not None
    assert snapshot.meta.creation_timestamp == T0 + datetime.timedelta(minutes=5)
