"""Between full verifications an unchanged member is checked on its gateway end only; every
`verify_interval` each member's netns is read back and drift there is repaired."""

from __future__ import annotations

from pathlib import Path

import pytest

from tailwire.services.nodeagent import reconciling
from tests.nodeagent import conftest as nodeagent

pytestmark = pytest.mark.root


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def agent_with(clock: FakeClock, tmp_path: Path) -> reconciling.Agent:
    base = nodeagent.make_agent(tmp_path, verify_interval=60.0)
    return reconciling.Agent(options=base.options, clock=clock)


def cgnat_route(topology: nodeagent.Topology, pod: str) -> str:
    return topology.factory.run(["ip", "route", "show", "100.64.0.0/10"], netns=pod).stdout


async def test_drift_inside_a_member_netns_is_repaired_at_the_next_full_verification(
    topology: nodeagent.Topology, tmp_path: Path
) -> None:
    clock = FakeClock()
    agent = agent_with(clock, tmp_path)
    pod = topology.pod(index=1)
    plan = nodeagent.plan(topology, nodeagent.member(uid="uid-1", pod=pod, index=1))
    assert all(p.ok for p in (await agent.apply_plan(plan)).pods)
    topology.factory.run(["ip", "route", "del", "100.64.0.0/10"], netns=pod)

    # A new plan generation within the interval trusts the unchanged member (no netns read).
    clock.now += 5
    quick = await agent.apply_plan(plan.model_copy(update={"generation": 2}))
    assert quick.netlink_writes == 0
    assert cgnat_route(topology, pod) == ""

    clock.now += 60
    full = await agent.apply_plan(plan.model_copy(update={"generation": 3}))
    assert full.netlink_writes > 0
    assert "dev ts0" in cgnat_route(topology, pod)
    assert topology.factory.ping(netns=pod, address=topology.peer.peer_ipv4)


async def test_a_missing_gateway_end_is_rewired_at_once_and_new_members_are_read_in_full(
    topology: nodeagent.Topology, tmp_path: Path
) -> None:
    clock = FakeClock()
    agent = agent_with(clock, tmp_path)
    pods = [topology.pod(index=i) for i in (1, 2)]
    first = nodeagent.member(uid="uid-1", pod=pods[0], index=1)
    ack = await agent.apply_plan(nodeagent.plan(topology, first))
    assert all(p.ok for p in ack.pods)
    gateway_link = next(
        line.split(":")[1].strip().split("@")[0]
        for line in topology.factory.run(
            ["ip", "-o", "link"], netns=topology.gateway
        ).stdout.splitlines()
        if ": tw" in line
    )
    topology.factory.run(["ip", "link", "del", gateway_link], netns=topology.gateway)

    clock.now += 1
    second = nodeagent.member(uid="uid-2", pod=pods[1], index=2)
    ack = await agent.apply_plan(nodeagent.plan(topology, first, second, generation=2))
    results = {str(p.pod_uid): p for p in ack.pods}
    assert results["uid-1"].ok
    assert results["uid-1"].writes > 0  # its gateway end was gone: checked even between
    assert results["uid-2"].writes > 0  # a new member is always read and written in full
    for pod in pods:
        assert topology.factory.ping(netns=pod, address=topology.peer.peer_ipv4)
