"""Node addresses are carved out like the cluster CIDRs: when a group route (10.0.0.0/8 on a
VPC whose nodes are 10.0.x) or the exit node covers a node's InternalIP, every member keeps
that address on its own interface, so kubelet probes and hostNetwork clients are answered
and reached through eth0, not the tailnet."""

from __future__ import annotations

import datetime
import ipaddress
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tailwire.services.nodeagent.domain import desiring
from tailwire.services.renderer import view
from tailwire.services.renderer.egress import options, rendering, routes, statuses
from tailwire.shared import ids
from tailwire.shared.events import cluster, nodes
from tests.renderer import helpers

OPTS = options.Options(cluster_cidrs=("10.244.0.0/16", "10.96.0.0/12"))
CLUSTER = ("10.244.0.0/16", "10.96.0.0/12")
SUBNET = {**helpers.PEERS_SPEC, "mode": "subnet", "routes": ["10.0.0.0/8"]}
NOW = datetime.datetime(2026, 11, 22, tzinfo=datetime.UTC)


def node(name: str, *addresses: str) -> cluster.NodeSnapshot:
    return helpers.node(name).model_copy(update={"internal_ips": addresses})


def member_carve_outs(spec: dict[str, Any], *nodes: cluster.NodeSnapshot) -> tuple[str, ...]:
    v = view.ClusterView()
    for obj in (*nodes, helpers.group("peers", spec), helpers.pod("api-0", node_name="node-a")):
        v.apply(obj)
    result = rendering.render_egress(view=v, opts=OPTS)
    (member,) = result.plans["node-a"].members
    return member.carve_outs


def test_a_node_address_covered_by_a_route_becomes_a_carve_out() -> None:
    carve_outs = member_carve_outs(
        SUBNET, node("node-a", "10.0.1.5"), node("node-b", "192.168.3.3")
    )
    # The node inside 10.0.0.0/8 is carved out; the one outside the route is left alone.
    assert carve_outs == (*CLUSTER, "10.0.1.5/32")


def test_without_a_covering_route_nothing_is_carved_out() -> None:
    cgnat_only = member_carve_outs(helpers.PEERS_SPEC, node("node-a", "10.0.1.5"))
    assert cgnat_only == ()
    elsewhere = {**SUBNET, "routes": ["172.16.0.0/12"]}
    assert member_carve_outs(elsewhere, node("node-a", "10.0.1.5")) == ()


def test_an_exit_node_carves_out_every_node_address_of_both_families() -> None:
    spec = {**helpers.PEERS_SPEC, "exitNode": {"nodeID": "exit-fra1"}}
    carve_outs = member_carve_outs(
        spec,
        node("node-a", "10.0.1.5", "2001:db8::a"),
        node("node-b", "192.168.3.3"),
        node("node-c", "10.0.1.4"),
        # A node inside a cluster CIDR is already on eth0 with that CIDR; a broken address
        # (the watcher mirrors what the Node says) carves nothing.
        node("node-d", "10.244.0.9", "not-an-ip"),
    )
    # Adjacent node addresses share one rule: 10.0.1.4 and 10.0.1.5 are 10.0.1.4/31.
    assert carve_outs == (*CLUSTER, "10.0.1.4/31", "192.168.3.3/32", "2001:db8::a/128")


def test_a_route_made_only_of_node_addresses_is_refused_by_name() -> None:
    decision = routes.decide_routes(
        spec_routes=["10.0.1.5/32", "10.0.0.0/8"],
        subnet_mode=True,
        exit_node=False,
        cluster_cidrs=CLUSTER,
        node_addresses={"node-a": ("10.0.1.5",)},
    )
    assert decision.routes == (*routes.ALWAYS, "10.0.0.0/8")
    assert decision.carve_outs == (*CLUSTER, "10.0.1.5/32")
    (refused,) = decision.refused
    assert refused.route == "10.0.1.5/32"
    assert refused.reason.startswith("holds only node addresses (node-a)")

    v = view.ClusterView()
    spec = {**SUBNET, "routes": ["10.0.0.0/8", "10.0.1.5/32"]}
    for obj in (node("node-a", "10.0.1.5"), helpers.group("peers", spec)):
        v.apply(obj)
    v.apply(helpers.pod("api-0", node_name="node-a"))
    result = rendering.render_egress(view=v, opts=OPTS)
    status = statuses.group_status(
        result=result.groups["peers"], key=None, plan_generations={}, acks={}, now=NOW
    )
    degraded = {c.type: c for c in status.conditions}["Degraded"]
    assert (degraded.status, degraded.reason) == ("True", "RoutesRefused")
    assert degraded.message.startswith("spec.routes[1]: 10.0.1.5/32: holds only node addresses")


v4_route = st.builds(
    lambda addr, prefix: str(ipaddress.ip_network(f"{addr}/{prefix}", strict=False)),
    st.integers(0x0A000000, 0x0A0000FF).map(ipaddress.IPv4Address),
    st.integers(8, 32),
)
node_ip = st.integers(0x0A000000, 0x0A0000FF).map(lambda a: str(ipaddress.IPv4Address(a)))


@settings(max_examples=300, deadline=None)
@given(
    spec_routes=st.lists(v4_route, max_size=5),
    node_ips=st.dictionaries(st.sampled_from("abcdef"), st.lists(node_ip, max_size=3)),
    exit_node=st.booleans(),
)
def test_covered_node_addresses_are_carved_out_and_the_agent_accepts_the_result(
    spec_routes: list[str], node_ips: dict[str, list[str]], exit_node: bool
) -> None:
    decision = routes.decide_routes(
        spec_routes=spec_routes,
        subnet_mode=True,
        exit_node=exit_node,
        cluster_cidrs=("10.0.0.128/26",),
        node_addresses=node_ips,
    )
    v4 = ipaddress.IPv4Network
    kept = [v4(r) for r in decision.routes if ":" not in r]
    carved = [v4(c) for c in decision.carve_outs]
    hosts = {v4(a) for addresses in node_ips.values() for a in addresses}
    for host in hosts:
        covered = exit_node or any(host.subnet_of(r) for r in kept)
        assert covered == any(host.subnet_of(c) for c in carved)
    for block in carved:  # what is carved out besides the cluster CIDR is node addresses
        if block != v4("10.0.0.128/26"):
            assert all(v4(a) in hosts for a in block)
    # Never a route the nodeagent would refuse for lying inside a carve-out.
    member = nodes.MemberAssignment(
        pod_uid=ids.PodUID("p"),
        namespace="ns",
        name="p",
        group=ids.GroupName("g"),
        netns="pod",
        link=nodes.LinkAddresses(
            member_v4="169.254.64.1/30",
            gateway_v4="169.254.64.2/30",
            member_v6="fd74:7769:7265::1/126",
            gateway_v6="fd74:7769:7265::2/126",
        ),
        routes=decision.routes,
        exit_node=exit_node,
        carve_outs=decision.carve_outs,
    )
    gateway = nodes.GatewayAssignment(group=ids.GroupName("g"), netns="gw", fwmark=1, table=2)
    plan = nodes.NodePlan(
        node=ids.NodeName("n"), generation=1, gateways=(gateway,), members=(member,)
    )
    (desired,) = desiring.desire(plan).members
    assert desired.refused is None
