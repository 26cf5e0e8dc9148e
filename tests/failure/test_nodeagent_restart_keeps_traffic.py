"""A nodeagent killed with -9 and started again adopts what it built: the member's veth keeps
its ifindex on both sides, the restarted agent writes nothing, and a ping loop from the
member netns to the simulated tailnet peer loses no packet across the restart."""

from __future__ import annotations

import asyncio
import datetime
import re

import pytest

from tailwire.shared.events import nodes
from tailwire.testing import system

from . import helpers

GROUP = "steady"


@pytest.mark.timeout(90)
async def test_nodeagent_restart_does_not_rewire_and_traffic_keeps_flowing() -> None:
    if not helpers.datapath():
        pytest.skip("needs real network namespaces (root)")
    async with helpers.whole_system() as s:
        s.create_namespace(GROUP)
        helpers.egress_group(s, GROUP)
        pod = await helpers.member(s, group=GROUP, name="api-0")
        live = {pod.uid: pod}
        before = await helpers.converged(s, live=live, gone=set(), within=30)
        plan = await s.last_plan(helpers.NODE)
        assert plan is not None
        member_side = await helpers.check_kernel(s, live=live, gone=set())
        gateway_side = helpers.gateway_links(s, plan)
        assert s.ping(pod)
        assert pod.netns is not None
        # 80 echoes, one every 100 ms: they span the kill, the start and the re-apply.
        ping = await asyncio.create_subprocess_exec(
            *("ip", "netns", "exec", pod.netns, "ping", "-4", "-n", "-q"),
            *("-i", "0.1", "-c", "80", "-W", "1", system.PEER_IPV4),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        agent = s.nodeagent(helpers.NODE)
        await s.restart(agent.name)
        assert agent.starts == 2
        after = await system.eventually(
            lambda: _ack_after(s, before.applied_at), within=30, what="an ack after the restart"
        )
        assert ping.returncode is None, "the ping loop ended before the agent was back"
        output, _ = await ping.communicate()
        assert after.netlink_writes == 0
        assert all(p.ok and p.writes == 0 for p in after.pods)
        assert await helpers.check_kernel(s, live=live, gone=set()) == member_side
        assert helpers.gateway_links(s, plan) == gateway_side
        summary = re.search(rb"(\d+) packets transmitted, (\d+) received", output)
        assert summary is not None, output
        sent, received = (int(n) for n in summary.groups())
        assert (sent, received) == (80, 80), output.decode(errors="replace")


async def _ack_after(s: system.System, at: datetime.datetime) -> nodes.NodeAck | None:
    ack = await s.last_ack(helpers.NODE)
    return ack if ack is not None and ack.applied_at > at else None
