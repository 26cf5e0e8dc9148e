"""Members follow the subnet routes their gateway accepted from the tailnet (issue 14, item 9):
the node's ack names them, the node's plan routes the group's members there; the tailnet's
routes that would take cluster or node traffic are dropped quietly, never reported as the
spec's mistake; groups without acceptRoutes and other nodes are untouched."""

from __future__ import annotations

from collections.abc import Mapping

from tailwire.services.renderer import view
from tailwire.services.renderer.egress import rendering, routes
from tailwire.shared import ids
from tailwire.shared.events import cluster, nodes
from tests.renderer import helpers

CLUSTER = ("10.244.0.0/16", "10.96.0.0/12")


def build(spec: Mapping[str, object]) -> view.ClusterView:
    v = view.ClusterView()
    for obj in (
        cluster.NodeSnapshot(meta=cluster.Meta(uid="a", name="node-a"), internal_ips=("10.0.5.5",)),
        cluster.NodeSnapshot(meta=cluster.Meta(uid="b", name="node-b")),
        helpers.group("peers", {**helpers.PEERS_SPEC, **spec}),
        helpers.pod("api-0", node_name="node-a"),
        helpers.pod("api-1", node_name="node-b"),
    ):
        v.apply(obj)
    return v


def said(**fields: object) -> nodes.GatewayResult:
    return nodes.GatewayResult(group=ids.GroupName("peers"), ok=True, **fields)  # type: ignore[arg-type]


def test_a_nodes_members_follow_the_routes_its_gateway_accepted() -> None:
    accepted = ("10.1.0.0/16", "10.0.0.0/8", "10.244.3.0/24", "0.0.0.0/0", "fd00:5::/64")
    result = rendering.render_egress(
        view=build({}),
        opts=helpers.OPTS,
        gateway_results={("node-a", "peers"): said(tailnet_routes=accepted)},
    )
    (a,) = result.plans["node-a"].members
    assert a.routes == (
        "100.64.0.0/10", "fd7a:115c:a1e0::/48", "10.1.0.0/16", "10.0.0.0/8", "fd00:5::/64"
    )  # fmt: skip
    # 10.0.0.0/8 covers the cluster CIDRs and node-a: they stay on eth0.
    assert a.carve_outs == ("10.244.0.0/16", "10.96.0.0/12", "10.0.5.5/32")
    (b,) = result.plans["node-b"].members
    assert b.routes == ("100.64.0.0/10", "fd7a:115c:a1e0::/48")
    # The tailnet's route inside the cluster CIDR is not the spec's fault.
    assert result.groups["peers"].decision is not None
    assert result.groups["peers"].decision.refused == ()


def test_without_accept_routes_members_keep_to_the_tailnet_ranges() -> None:
    result = rendering.render_egress(
        view=build({"acceptRoutes": False}),
        opts=helpers.OPTS,
        gateway_results={("node-a", "peers"): said(tailnet_routes=("10.1.0.0/16",))},
    )
    (a,) = result.plans["node-a"].members
    assert a.routes == ("100.64.0.0/10", "fd7a:115c:a1e0::/48")


def test_accepted_routes_never_become_refusals() -> None:
    decision = routes.decide_routes(
        spec_routes=(),
        subnet_mode=False,
        exit_node=False,
        cluster_cidrs=CLUSTER,
        node_addresses={"node-a": ("10.0.5.5",)},
        accepted=("10.244.3.0/24", "10.0.5.5/32", "not-a-route", "::/0"),
    )
    assert decision.routes == ("100.64.0.0/10", "fd7a:115c:a1e0::/48")
    assert decision.refused == ()


def test_members_keep_their_own_default_route_while_the_exit_node_names_no_device() -> None:
    spec = {"exitNode": {"nodeID": "exit-nowhere"}}
    for reason, full_tunnel in (
        ("ExitNodeNotFound", False),
        ("ExitNodeAmbiguous", False),
        ("ExitNodeNotOffered", True),  # it exists: tailscaled has it, waiting for approval
        ("GatewayNotRunning", True),
        (None, True),
    ):
        result = rendering.render_egress(
            view=build(spec),
            opts=helpers.OPTS,
            gateway_results={("node-a", "peers"): said(exit_node_reason=reason)},
        )
        (a,) = result.plans["node-a"].members
        assert a.exit_node is full_tunnel, reason
        assert (a.carve_outs != ()) is full_tunnel, reason
        (b,) = result.plans["node-b"].members  # its own gateway said nothing: as the spec says
        assert b.exit_node is True
