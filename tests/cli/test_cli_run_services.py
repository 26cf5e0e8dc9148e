"""`tailwire run <service>`: each service starts, declares the streams, and stops on a signal."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

import nats
import pytest

from tailwire.shared import bus
from tailwire.testing import natsserver


@pytest.mark.parametrize("service", ["watcher", "keyminter", "renderer", "dnsupdater", "nodeagent"])
@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
async def test_service_declares_streams_and_stops_cleanly(
    nats_server: natsserver.NatsServer, service: str, stop_signal: signal.Signals
) -> None:
    env = {
        **os.environ,
        "TAILWIRE_NATS_URL": nats_server.url,
        "TAILWIRE_TRACES_EXPORTER": "none",
        "TAILWIRE_NODE_NAME": "node-a",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "tailwire.cli", "run", service],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        client = await nats.connect(nats_server.url)
        js = client.jetstream()
        names: set[str] = set()
        for _ in range(200):
            names = {str(s.config.name) for s in await js.streams_info()}
            if {
                bus.CLUSTER_STREAM,
                bus.NODES_STREAM,
                bus.WORK_STREAM,
            } <= names or process.poll() is not None:
                break
            await asyncio.sleep(0.05)
        await client.close()
        assert process.poll() is None, process.communicate()[1]
        assert {bus.CLUSTER_STREAM, bus.NODES_STREAM, bus.WORK_STREAM} <= names
    finally:
        process.send_signal(stop_signal)
        try:
            _, stderr = process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr
