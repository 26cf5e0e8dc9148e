"""`kill -USR1` makes a running service write every thread's stack to its log and go on.

This is how an operator (and the test launcher, before it kills a service that ignored
SIGTERM) finds where a service hangs: faulthandler writes from a signal handler, so it
works even when the event loop is stuck."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from nats.aio.client import Client

from tailwire.shared import settings
from tailwire.testing.system import processes


async def test_sigusr1_dumps_stacks_and_the_service_keeps_running(
    tmp_path: Path, bus_settings: settings.BusSettings, nats_client: Client
) -> None:
    agent = processes.dry_run_nodeagent(
        node="node-a", log_dir=tmp_path, env={"TAILWIRE_NATS_URL": bus_settings.nats_url}
    )
    agent.start()
    try:
        await agent.wait_ready(within=30)
        agent.signal(signal.SIGUSR1)
        for _ in range(100):
            if "most recent call first" in agent.log_tail(400):
                break
            await asyncio.sleep(0.05)
        log = agent.log_tail(400)
        assert "Current thread" in log, log
        assert "asyncio" in log  # the event loop's own frames, where a hang would show
        assert agent.running
        assert await agent.is_ready()
        assert await agent.stop() == 0
    finally:
        await agent.kill()
