"""kill -9 each service in turn while pods come and go: after each restart the system
converges, every live pod is stitched exactly once, and no change is lost (a pod created
while a service was dead is stitched; a pod deleted then is unwired)."""

from __future__ import annotations

import pytest

from tailwire.shared.events import nodes
from tailwire.testing import system

from . import helpers

SERVICES = ("watcher", "keyminter", "renderer", "dnsupdater", f"nodeagent/{helpers.NODE}")
GROUP = "burst"


@pytest.mark.timeout(120)
async def test_kill_9_each_service_in_turn_loses_no_change_and_stitches_once() -> None:
    async with helpers.whole_system() as s, s.capture() as seen:
        s.create_namespace(GROUP)
        helpers.egress_group(s, GROUP)
        live: dict[str, system.MemberPod] = {}
        gone: set[str] = set()
        count = 0

        async def add(n: int) -> None:
            nonlocal count
            for _ in range(n):
                pod = await helpers.member(s, group=GROUP, name=f"p{count}")
                live[pod.uid] = pod
                count += 1

        await add(2)
        await helpers.converged(s, live=live, gone=gone, within=30)
        for service in SERVICES:
            await add(2)
            await s.kill(service)
            await add(2)
            victim = next(iter(live.values()))
            s.delete_pod(namespace=victim.namespace, name=victim.name)
            gone.add(victim.uid)
            del live[victim.uid]
            await s.start(service)
        ack = await helpers.converged(s, live=live, gone=gone, within=60)
        if not helpers.datapath():
            pytest.skip("no network namespaces: plans converged, stitching not checked")
        counts = helpers.stitch_counts(seen)
        twice = {live[u].name: helpers.history(seen, u) for u in live if counts.get(u, 0) != 1}
        assert not twice, "\n".join(f"{k}:\n  " + "\n  ".join(v) for k, v in twice.items())
        indexes = await helpers.check_kernel(s, live=live, gone=gone)
        # One more apply of the same plan writes nothing and moves no link.
        await s.restart(f"nodeagent/{helpers.NODE}")
        await system.eventually(
            lambda: _newer_ack(s, than=ack), within=30, what="an ack after the restart"
        )
        again = await s.last_ack(helpers.NODE)
        assert again is not None
        assert again.netlink_writes == 0
        assert await helpers.check_kernel(s, live=live, gone=gone) == indexes
        for pod in list(live.values())[:3]:
            assert s.ping(pod), f"{pod.name} cannot reach the tailnet peer"


async def _newer_ack(s: system.System, *, than: nodes.NodeAck) -> bool:
    ack = await s.last_ack(helpers.NODE)
    return ack is not None and ack.applied_at > than.applied_at
