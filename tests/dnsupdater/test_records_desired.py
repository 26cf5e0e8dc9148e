"""Desired records: hostnames of accepted routes on tailnet Gateways -> Tailscale addresses."""

from __future__ import annotations

from tailwire.services.dnsupdater.domain import exposures, records
from tailwire.shared.events import cluster, dns

from . import snapshots


def _served(
    *,
    services: list[cluster.ServiceSnapshot],
    gateways: list[cluster.GatewaySnapshot],
    routes: list[cluster.HTTPRouteSnapshot],
) -> dict[str, tuple[exposures.Exposure, ...]]:
    by_ref = {
        exposures.GatewayRef(namespace=g.meta.namespace or "", name=g.meta.name): g
        for g in gateways
    }
    exposed = exposures.tailnet_exposures(services=services, gateways=by_ref)
    return exposures.served_hostnames(routes=routes, exposures=exposed).hostnames


def _names(found: frozenset[dns.Record]) -> set[tuple[str, str, str]]:
    return {(r.name, r.type, r.value) for r in found}


def test_accepted_route_on_tailnet_gateway_gets_both_families() -> None:
    served = _served(
        services=[snapshots.tailscale_service()],
        gateways=[snapshots.gateway()],
        routes=[snapshots.route("docs", hostnames=("Docs.Example.test.",))],
    )
    found = records.desired_records(zone="example.test", served=served, ttl=60)
    assert _names(found) == {
        ("docs.example.test", "A", "100.64.0.10"),
        ("docs.example.test", "AAAA", "fd7a:115c:a1e0::a"),
    }
    assert {r.ttl for r in found} == {60}


def test_unaccepted_unattached_and_non_tailscale_routes_get_nothing() -> None:
    served = _served(
        services=[
            snapshots.tailscale_service(),
            snapshots.tailscale_service(
                gateway_name="public", name="envoy-public", load_balancer_class=None
            ),
        ],
        gateways=[snapshots.gateway(), snapshots.gateway("public")],
        routes=[
            snapshots.route("pending", hostnames=("pending.example.test",), accepted=None),
            snapshots.route("refused", hostnames=("refused.example.test",), accepted=False),
            snapshots.route("public", hostnames=("www.example.test",), gateway_name="public"),
            snapshots.route("gone", hostnames=("gone.example.test",), deleted=True),
        ],
    )
    assert served == {}


def test_gateway_without_addresses_or_deleted_is_not_exposed() -> None:
    no_ips = snapshots.tailscale_service(ips=())
    route = snapshots.route("docs", hostnames=("docs.example.test",))
    assert _served(services=[no_ips], gateways=[snapshots.gateway()], routes=[route]) == {}
    gone = snapshots.gateway(deleted=True)
    assert _served(services=[snapshots.tailscale_service()], gateways=[gone], routes=[route]) == {}


def test_hostnames_outside_the_zone_are_left_to_other_zones() -> None:
    served = _served(
        services=[snapshots.tailscale_service()],
        gateways=[snapshots.gateway()],
        routes=[snapshots.route("a", hostnames=("a.example.test", "b.other.test", "example.test"))],
    )
    assert {
        r.name for r in records.desired_records(zone="example.test", served=served, ttl=30)
    } == {"a.example.test"}  # the apex only where the zone allows it
    allowed = records.desired_records(zone="example.test", served=served, ttl=30, apex=True)
    assert {r.name for r in allowed} == {"a.example.test", "example.test"}
    assert {r.name for r in records.desired_records(zone="other.test", served=served, ttl=30)} == {
        "b.other.test"
    }


def test_wildcards_only_where_the_backend_can_serve_them() -> None:
    served = _served(
        services=[snapshots.tailscale_service(ips=("100.64.0.10",))],
        gateways=[snapshots.gateway()],
        routes=[snapshots.route("apps", hostnames=("*.apps.example.test",))],
    )
    assert len(records.desired_records(zone="example.test", served=served, ttl=60)) == 1
    assert not records.desired_records(zone="example.test", served=served, ttl=60, wildcards=False)


def test_owner_markers_scope_what_is_ours() -> None:
    ours = records.with_owner_markers(
        {dns.Record(name="docs.example.test", type="A", value="100.64.0.10")}, ttl=60
    )
    hand_made = {
        dns.Record(name="mail.example.test", type="A", value="192.0.2.25"),
        dns.Record(name="docs.example.test", type="TXT", value='"v=spf1 -all"'),
    }
    assert records.owned(ours | hand_made) == ours


def test_difference_adds_removes_and_replaces_ttl() -> None:
    old = dns.Record(name="a.example.test", type="A", value="100.64.0.1", ttl=60)
    new = dns.Record(name="a.example.test", type="A", value="100.64.0.2", ttl=60)
    longer = dns.Record(name="b.example.test", type="A", value="100.64.0.3", ttl=300)
    shorter = longer.model_copy(update={"ttl": 60})
    change = records.difference(desired={new, shorter}, actual={old, longer})
    assert change.added == (new, shorter)
    assert change.removed == (old, longer)
    assert not records.difference(desired={new}, actual={new})
    assert records.apply_change({old, longer}, change) == {new, shorter}


def _on_listeners(route: cluster.HTTPRouteSnapshot, *listeners: tuple[str, str | None]) -> set[str]:
    gateway = snapshots.gateway().model_copy(
        update={
            "listeners": tuple(
                cluster.Listener(name=name, port=443, protocol="HTTPS", hostname=hostname)
                for name, hostname in listeners
            )
        }
    )
    return set(
        _served(services=[snapshots.tailscale_service()], gateways=[gateway], routes=[route])
    )


def test_listener_hostnames_narrow_or_supply_the_route_hostnames() -> None:
    wildcard = ("https", "*.sudhanva.me")
    # The seed's wildcard listener: route hostnames inside it pass, others do not.
    inside = snapshots.route("docs", hostnames=("docs.sudhanva.me", "docs.other.io"))
    assert _on_listeners(inside, wildcard) == {"docs.sudhanva.me"}
    # A route without hostnames serves the listener's (a wildcard record).
    bare = snapshots.route("all", hostnames=())
    assert _on_listeners(bare, wildcard) == {"*.sudhanva.me"}
    assert _on_listeners(bare, ("http", None)) == set()
    # A wildcard route on a specific listener is narrowed to the listener's name.
    wide = snapshots.route("wide", hostnames=("*.sudhanva.me",))
    assert _on_listeners(wide, ("vault", "vault.sudhanva.me")) == {"vault.sudhanva.me"}


def test_section_name_picks_the_listener() -> None:
    parent = cluster.ParentRef(namespace="tailscale", name="tailscale-gateway", section_name="b")
    route = snapshots.route("x", hostnames=()).model_copy(
        update={
            "parent_refs": (parent,),
            "parents": (cluster.RouteParentStatus(parent=parent, accepted=True),),
        }
    )
    assert _on_listeners(route, ("a", "a.example.test"), ("b", "b.example.test")) == {
        "b.example.test"
    }
