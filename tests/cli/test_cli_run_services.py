"""`tailwire run <service>`: each service starts and stops on a signal. The renderer declares
the streams; every other service only waits for them (it is not ready, and creates nothing,
until they exist)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys

import httpx
import nats
import pytest

from tailwire.shared import bus, settings
from tailwire.testing import natsserver

STREAMS = {bus.CLUSTER_STREAM, bus.NODES_STREAM, bus.WORK_STREAM}


async def _readyz(http: httpx.AsyncClient) -> int | None:
    with contextlib.suppress(httpx.TransportError):
        return (await http.get("/readyz", timeout=1)).status_code
    return None


async def _streams(url: str) -> set[str]:
    client = await nats.connect(url)
    try:
        return {str(s.config.name) for s in await client.jetstream().streams_info()}
    finally:
        await client.close()


@pytest.mark.parametrize("service", ["watcher", "keyminter", "renderer", "dnsupdater", "nodeagent"])
@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
async def test_service_starts_with_the_streams_and_stops_cleanly(
    nats_server: natsserver.NatsServer, service: str, stop_signal: signal.Signals
) -> None:
    health_port = natsserver.free_port()
    env = {
        **os.environ,
        "TAILWIRE_NATS_URL": nats_server.url,
        "TAILWIRE_TRACES_EXPORTER": "none",
        "TAILWIRE_NODE_NAME": "node-a",
        "TAILWIRE_HEALTH_PORT": str(health_port),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "tailwire.cli", "run", service],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # Ready (streams there, subscribers attached) by its own /readyz; a loaded machine
        # may take a while to import and start a service, hence the generous deadline.
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{health_port}") as http:
            if service != bus.STREAM_OWNER:
                for _ in range(450):  # until its health server answers
                    if process.poll() is not None or await _readyz(http) is not None:
                        break
                    await asyncio.sleep(0.1)
                await asyncio.sleep(1.0)
                assert await _readyz(http) == 503, "ready without its streams"
                assert await _streams(nats_server.url) == set(), "a stream declared by a non-owner"
                client = await nats.connect(nats_server.url)  # as the renderer would
                await bus.declare_streams(client.jetstream(), bus=settings.BusSettings())
                await client.close()
            for _ in range(450):
                if process.poll() is not None or await _readyz(http) == 200:
                    break
                await asyncio.sleep(0.1)
        assert process.poll() is None, process.communicate()[1]
        assert await _streams(nats_server.url) >= STREAMS
    finally:
        process.send_signal(stop_signal)
        try:
            _, stderr = process.communicate(timeout=40)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("TAILWIRE_CLUSTER_NAME", "Prod_1", "'Prod_1' is not a lower-case DNS label"),
        ("TAILWIRE_CLUSTER_CIDRS", "10.0.0.1/8", "'10.0.0.1/8' is not a network"),
        ("TAILWIRE_STREAM_REPLICAS", "9", "less than or equal to 5"),
        ("TAILWIRE_NATS_TLS_CA_FILE", "/nonexistent/ca.pem", "is not a readable PEM CA bundle"),
        ("TAILWIRE_GATEWAY_IMAGE", "tailscale latest", "is not an image reference"),
    ],
)
def test_a_bad_setting_stops_the_service_with_the_variable_named(
    variable: str, value: str, says: str
) -> None:
    env = {**os.environ, "TAILWIRE_TRACES_EXPORTER": "none", variable: value}
    done = subprocess.run(
        [sys.executable, "-m", "tailwire.cli", "run", "renderer"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert f"tailwire run renderer: {variable}: " in done.stderr
    assert says in done.stderr
    assert "Traceback" not in done.stderr
