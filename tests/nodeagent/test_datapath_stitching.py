"""Real netns: a member reaches the tailnet through its group's gateway, MASQUERADEd."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.nodeagent import conftest as nodeagent

pytestmark = pytest.mark.root


async def test_member_pings_the_tailnet_peer_over_v4_and_v6(
    topology: nodeagent.Topology, tmp_path: Path
) -> None:
    pod, outsider = topology.pod(index=1), topology.pod(index=2)
    agent = nodeagent.make_agent(tmp_path)
    ack = await agent.apply_plan(
        nodeagent.plan(topology, nodeagent.member(uid="uid-a", pod=pod, index=1))
    )

    assert [g.ok for g in ack.gateways] == [True], ack
    assert [(p.pod_uid, p.ok, p.error) for p in ack.pods] == [("uid-a", True, None)]
    assert ack.netlink_writes > 0
    f = topology.factory
    assert f.ping(netns=pod, address=topology.peer.peer_ipv4)
    assert f.ping(netns=pod, address=topology.peer.peer_ipv6)
    assert f.ping(netns=pod, address="100.101.0.7")
    # The pod's own interface and CNI route are untouched.
    assert "dev eth0" in f.run(["ip", "route", "get", "10.244.2.9"], netns=pod).stdout
    # A pod that is not a member has no way there.
    assert not f.ping(netns=outsider, address=topology.peer.peer_ipv4, wait=0.5)
