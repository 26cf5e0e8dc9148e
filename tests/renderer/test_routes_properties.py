"""Route filtering and link allocation, as properties (hypothesis)."""

from __future__ import annotations

import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st

from tailwire.services.renderer.egress import links, routes

v4_net = st.builds(
    lambda addr, prefix: str(
        ipaddress.ip_network(f"{ipaddress.IPv4Address(addr)}/{prefix}", strict=False)
    ),
    st.integers(0x0A000000, 0x0AFFFFFF),
    st.integers(8, 28),
)
v6_net = st.builds(
    lambda addr, prefix: str(
        ipaddress.ip_network(f"{ipaddress.IPv6Address(addr)}/{prefix}", strict=False)
    ),
    st.integers(0xFD00 << 112, (0xFD00 << 112) + (1 << 100)),
    st.integers(16, 64),
)


def _net(value: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(value)


def _inside(inner: str, outer: str) -> bool:
    a, b = _net(inner), _net(outer)
    return a.version == b.version and a.subnet_of(b)  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(
    spec_routes=st.lists(st.one_of(v4_net, v6_net), max_size=6),
    cluster_cidrs=st.lists(st.one_of(v4_net, v6_net), min_size=1, max_size=3),
    exit_node=st.booleans(),
    subnet_mode=st.booleans(),
)
def test_routes_inside_a_cluster_cidr_are_refused_and_containing_ones_carve_it_out(
    spec_routes: list[str], cluster_cidrs: list[str], exit_node: bool, subnet_mode: bool
) -> None:
    decision = routes.decide_routes(
        spec_routes=spec_routes,
        subnet_mode=subnet_mode,
        exit_node=exit_node,
        cluster_cidrs=cluster_cidrs,
    )
    assert decision.routes[:2] == routes.ALWAYS
    candidates = set(spec_routes) if subnet_mode else set()
    assert set(decision.routes) | {r.route for r in decision.refused} == candidates | set(
        routes.ALWAYS
    )
    for route in decision.routes:
        assert not any(_inside(route, c) for c in cluster_cidrs)
    for refused in decision.refused:
        assert any(_inside(refused.route, c) for c in cluster_cidrs)
        assert "cluster CIDR" in refused.reason
    wanted = {
        str(_net(c))
        for c in cluster_cidrs
        if exit_node or any(_inside(c, r) for r in decision.routes)
    }
    assert set(decision.carve_outs) == wanted
    assert len(decision.routes) == len(set(decision.routes))


def test_payments_route_keeps_the_range_and_carves_out_the_cluster() -> None:
    decision = routes.decide_routes(
        spec_routes=["10.0.0.0/8", "10.244.7.0/24"],
        subnet_mode=True,
        exit_node=False,
        cluster_cidrs=["10.244.0.0/16", "10.96.0.0/12", "fd00:10:244::/56"],
    )
    assert decision.routes == ("100.64.0.0/10", "fd7a:115c:a1e0::/48", "10.0.0.0/8")
    assert decision.carve_outs == ("10.244.0.0/16", "10.96.0.0/12")
    assert [r.route for r in decision.refused] == ["10.244.7.0/24"]


@settings(max_examples=100, deadline=None)
@given(
    uids=st.lists(st.uuids().map(str), max_size=60, unique=True),
    newcomers=st.lists(st.uuids().map(str), max_size=10, unique=True),
)
def test_link_slots_are_distinct_and_stable_when_pods_join(
    uids: list[str], newcomers: list[str]
) -> None:
    link_range = links.LinkRange(cidr_v4="169.254.0.0/16", cidr_v6="fd74:7769:7265::/80")
    first = link_range.assign(uids, previous={})
    assert len(set(first.values())) == len(first)
    assert link_range.forbidden == frozenset({(256 + 1) // 2})  # 169.254.1.1 lives in slot 128
    assert not set(first.values()) & link_range.forbidden
    second = link_range.assign([*uids, *newcomers], previous=first)
    assert {u: second[u] for u in uids} == first
    assert len(set(second.values())) == len(second)
    for uid, slot in second.items():
        assert link_range.slot_of(link_range.addresses(slot)) == slot, uid
