"""nats-server stopped and started again in the middle of a burst of pod changes: every
service reconnects on its own (none exits), and the system converges to exactly the live
pods, each stitched once in the kernel, the deleted one unwired."""

from __future__ import annotations

import asyncio

import pytest

from tailwire.testing import system

from . import helpers

GROUP = "reconnect"


@pytest.mark.timeout(120)
async def test_services_reconnect_and_converge_after_a_nats_restart() -> None:
    async with helpers.whole_system() as s:
        s.create_namespace(GROUP)
        helpers.egress_group(s, GROUP)
        live: dict[str, system.MemberPod] = {}
        for index in range(3):
            pod = await helpers.member(s, group=GROUP, name=f"before-{index}")
            live[pod.uid] = pod
        await helpers.converged(s, live=live, gone=set(), within=30)
        starts = {name: p.starts for name, p in s.processes.items()}

        for index in range(2):
            pod = await helpers.member(s, group=GROUP, name=f"during-{index}")
            live[pod.uid] = pod
        await asyncio.to_thread(s.restart_nats)
        for index in range(2):
            pod = await helpers.member(s, group=GROUP, name=f"after-{index}")
            live[pod.uid] = pod
        victim = next(iter(live.values()))
        s.delete_pod(namespace=victim.namespace, name=victim.name)
        del live[victim.uid]

        await helpers.converged(s, live=live, gone={victim.uid}, within=60)
        # Nobody died and nobody was restarted: they reconnected.
        assert {name: p.starts for name, p in s.processes.items()} == starts
        assert all(p.running for p in s.processes.values())
        if helpers.datapath():
            await helpers.check_kernel(s, live=live, gone={victim.uid})
            assert s.ping(next(iter(live.values())))
