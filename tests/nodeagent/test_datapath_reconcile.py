"""Real netns: the exit node with carve-outs, zero writes on re-apply, adoption after a
restart, removal of departed pods, and one bad pod not blocking the others."""

from __future__ import annotations

from pathlib import Path

import pytest

from tailwire.shared.events import nodes
from tests.nodeagent import conftest as nodeagent

pytestmark = pytest.mark.root


def ifindex(topology: nodeagent.Topology, *, netns: str, link: str) -> int:
    shown = topology.factory.run(["ip", "-o", "link", "show", link], netns=netns).stdout
    return int(shown.split(":", 1)[0])


async def test_exit_node_sends_the_internet_via_ts0_and_cluster_cidrs_via_eth0(
    topology: nodeagent.Topology, tmp_path: Path
) -> None:
    pod = topology.pod(index=1)
    agent = nodeagent.make_agent(tmp_path)
    member = nodeagent.member(uid="uid-a", pod=pod, index=1, exit_node=True)
    ack = await agent.apply_plan(nodeagent.plan(topology, member))
    assert all(p.ok for p in ack.pods), ack.pods

    f = topology.factory
    assert "dev ts0" in f.run(["ip", "route", "get", nodeagent.EXIT_DESTINATION], netns=pod).stdout
    assert "dev eth0" in f.run(["ip", "route", "get", "10.96.0.10"], netns=pod).stdout
    assert "dev eth0" in f.run(["ip", "route", "get", "10.244.7.7"], netns=pod).stdout
    assert f.ping(netns=pod, address=nodeagent.EXIT_DESTINATION)
    assert f.ping(netns=pod, address=topology.peer.peer_ipv6)


async def test_a_subnet_route_over_a_cluster_cidr_keeps_the_cidr_on_eth0(
    topology: nodeagent.Topology, tmp_path: Path
) -> None:
    pod = topology.pod(index=1)
    member = nodeagent.member(
        uid="uid-a", pod=pod, index=1, routes=(nodes.CGNAT_V4, nodes.TAILNET_ULA_V6, "10.0.0.0/8")
    ).model_copy(update={"carve_outs": nodeagent.CLUSTER_CIDRS})
    ack = await nodeagent.make_agent(tmp_path).apply_plan(nodeagent.plan(topology, member))
    assert all(p.ok for p in ack.pods), ack.pods
    f = topology.factory
    assert "dev ts0" in f.run(["ip", "route", "get", "10.1.2.3"], netns=pod).stdout
    assert "dev eth0" in f.run(["ip", "route", "get", "10.244.3.3"], netns=pod).stdout
    assert "dev eth0" in f.run(["ip", "route", "get", "192.0.2.1"], netns=pod).stdout


async def test_unchanged_plan_writes_nothing_and_a_restart_adopts_the_links(
    topology: nodeagent.Topology, tmp_path: Path
) -> None:
    pods = [topology.pod(index=i) for i in (1, 2)]
    members = [
        nodeagent.member(uid=f"uid-{i}", pod=pod, index=i, exit_node=i == 2)
        for i, pod in enumerate(pods, start=1)
    ]
    plan = nodeagent.plan(topology, *members)
    agent = nodeagent.make_agent(tmp_path)
    first = await agent.apply_plan(plan)
    assert first.netlink_writes > 0
    assert all(p.ok for p in first.pods), first.pods
    before = [ifindex(topology, netns=pod, link="ts0") for pod in pods]

    again = await agent.apply_plan(plan.model_copy(update={"generation": 2}))
    assert again.netlink_writes == 0
    assert again.generation == 2
    assert all(p.ok and p.writes == 0 for p in again.pods)

    restarted = nodeagent.make_agent(tmp_path)
    adopted = await restarted.apply_plan(plan)
    assert adopted.netlink_writes == 0
    assert [ifindex(topology, netns=pod, link="ts0") for pod in pods] == before
    assert topology.factory.ping(netns=pods[0], address=topology.peer.peer_ipv4)


async def test_pods_that_leave_the_plan_lose_their_links_and_rules(
    topology: nodeagent.Topology, tmp_path: Path
) -> None:
    staying, leaving = topology.pod(index=1), topology.pod(index=2)
    members = [
        nodeagent.member(uid="uid-stay", pod=staying, index=1),
        nodeagent.member(uid="uid-leave", pod=leaving, index=2, exit_node=True),
    ]
    agent = nodeagent.make_agent(tmp_path)
    await agent.apply_plan(nodeagent.plan(topology, *members))

    # A restarted agent (nothing in memory) still finds and removes the departed pod.
    ack = await nodeagent.make_agent(tmp_path).apply_plan(
        nodeagent.plan(topology, members[0], generation=2)
    )
    assert ack.removed == ("uid-leave",)
    f = topology.factory
    assert "ts0" not in f.run(["ip", "-o", "link", "show"], netns=leaving).stdout
    assert "proto 77" not in f.run(["ip", "rule", "show"], netns=leaving).stdout
    assert "lookup" in f.run(["ip", "rule", "show"], netns=leaving).stdout
    assert not f.ping(netns=leaving, address=topology.peer.peer_ipv4, wait=0.5)
    assert f.ping(netns=staying, address=topology.peer.peer_ipv4)
    gateway_links = f.run(["ip", "-o", "link", "show"], netns=topology.gateway).stdout
    assert gateway_links.count("tailwire pod=") == 1


async def test_a_failing_pod_does_not_block_the_others(
    topology: nodeagent.Topology, tmp_path: Path
) -> None:
    good = topology.pod(index=1)
    vanished = nodeagent.member(uid="uid-gone", pod="tw-doesnotexist", index=2)
    colliding = nodeagent.member(uid="uid-twin", pod=topology.pod(index=3), index=1)
    ack = await nodeagent.make_agent(tmp_path).apply_plan(
        nodeagent.plan(
            topology, nodeagent.member(uid="uid-a", pod=good, index=1), vanished, colliding
        )
    )
    results = {str(p.pod_uid): p for p in ack.pods}
    assert results["uid-a"].ok
    assert not results["uid-gone"].ok
    assert "does not exist" in (results["uid-gone"].error or "")
    assert not results["uid-twin"].ok
    assert "collides with pod uid-a" in (results["uid-twin"].error or "")
    assert topology.factory.ping(netns=good, address=topology.peer.peer_ipv4)


async def test_a_pod_moving_to_another_group_is_rewired_to_the_new_gateway(
    topology: nodeagent.Topology, tmp_path: Path
) -> None:
    f = topology.factory
    other_gateway = f.create()
    f.set_gateway_sysctls(other_gateway)
    other_peer = f.tailnet_peer(
        gateway=other_gateway, peer_ipv4="100.100.0.12", peer_ipv6="fd7a:115c:a1e0::12"
    )
    pod = topology.pod(index=1)
    member = nodeagent.member(uid="uid-a", pod=pod, index=1)
    agent = nodeagent.make_agent(tmp_path)
    await agent.apply_plan(nodeagent.plan(topology, member))

    two_gateways = nodeagent.plan(
        topology, member.model_copy(update={"group": "other"}), generation=2
    )
    two_gateways = two_gateways.model_copy(
        update={
            "gateways": (
                *two_gateways.gateways,
                two_gateways.gateways[0].model_copy(
                    update={"group": "other", "netns": other_gateway}
                ),
            )
        }
    )
    ack = await agent.apply_plan(two_gateways)
    assert [(p.ok, p.error) for p in ack.pods] == [(True, None)]
    assert ack.removed == ()
    assert "tailwire pod=" not in f.run(["ip", "-o", "link"], netns=topology.gateway).stdout
    assert "tailwire pod=uid-a" in f.run(["ip", "-o", "link"], netns=other_gateway).stdout
    assert f.ping(netns=pod, address=other_peer.peer_ipv4)


async def test_an_agent_killed_before_it_labelled_a_link_labels_it_on_restart(
    topology: nodeagent.Topology, tmp_path: Path
) -> None:
    """kill -9 between making a member's veth and setting its alias left a working pair that
    no one could tell was ours: the next agent labels it in place (same ifindex), and the
    pod's departure then removes it."""
    pod = topology.pod(index=1)
    member = nodeagent.member(uid="uid-a", pod=pod, index=1)
    await nodeagent.make_agent(tmp_path).apply_plan(nodeagent.plan(topology, member))
    f = topology.factory
    gateway_link = next(
        line.split(":")[1].strip().split("@")[0]
        for line in f.run(["ip", "-o", "link", "show"], netns=topology.gateway).stdout.splitlines()
        if "tailwire pod=uid-a" in line
    )
    f.run(["ip", "link", "set", gateway_link, "alias", ""], netns=topology.gateway)  # as if killed
    assert "tailwire pod=" not in f.run(["ip", "-o", "link", "show"], netns=topology.gateway).stdout
    before = ifindex(topology, netns=pod, link="ts0")

    restarted = nodeagent.make_agent(tmp_path)
    ack = await restarted.apply_plan(nodeagent.plan(topology, member, generation=2))
    assert [(p.ok, p.writes) for p in ack.pods] == [(True, 1)]
    assert ifindex(topology, netns=pod, link="ts0") == before
    assert (
        "tailwire pod=uid-a" in f.run(["ip", "-o", "link", "show"], netns=topology.gateway).stdout
    )

    gone = await restarted.apply_plan(nodeagent.plan(topology, generation=3))
    assert gone.removed == ("uid-a",)
    assert "ts0" not in f.run(["ip", "-o", "link", "show"], netns=pod).stdout
