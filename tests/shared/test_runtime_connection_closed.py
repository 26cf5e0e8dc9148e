"""A service whose NATS connection is closed for good exits instead of lingering alive.

nats-py reconnects by itself; it closes for good when the server refuses the credentials of
a live connection. Realistic case: a password rotated in the Secret and nats-server
reloaded. The service logs why and exits, so its supervisor restarts it with the new
password. It exits at once (code 3): FastStream's pull consumers would otherwise spin on
the closed connection and starve the event loop, so not even SIGTERM would be handled."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import nats

from tailwire.shared import bus, permissions, runtime, settings
from tailwire.testing import natsserver, system

NODE = "node-a"
USER = permissions.nodeagent_user(NODE)


def _config(port: int, store: Path, *, agent_password: str) -> str:
    passwords = {
        "watcher": "w",
        "keyminter": "k",
        "renderer": "r",
        "dnsupdater": "d",
        USER: agent_password,
    }
    return permissions.render_nats_config(
        passwords=passwords, nodes=(NODE,), listen=f"127.0.0.1:{port}", store_dir=str(store)
    )


async def _ready(port: int) -> bool:
    try:
        async with httpx.AsyncClient() as http:
            answer = await http.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
    except httpx.HTTPError:
        return False
    return answer.status_code == 200


async def test_a_service_refused_after_a_password_rotation_exits(tmp_path: Path) -> None:
    port = natsserver.free_port()
    server = natsserver.NatsServer(
        store_dir=tmp_path,
        port=port,
        config_text=_config(port, tmp_path / "js", agent_password="old"),
    )
    server.start()
    # The streams a nodeagent waits for, declared as a central service would.
    renderer = await nats.connect(server.url, user="renderer", password="r")
    await bus.declare_streams(renderer.jetstream(), bus=settings.BusSettings())
    await renderer.close()
    health = natsserver.free_port()
    log = tmp_path / "nodeagent.log"
    env = {
        **os.environ,
        "TAILWIRE_NATS_URL": server.url,
        "TAILWIRE_NATS_USER": USER,
        "TAILWIRE_NATS_PASSWORD": "old",
        "TAILWIRE_NODE_NAME": NODE,
        "TAILWIRE_HEALTH_PORT": str(health),
        "TAILWIRE_TRACES_EXPORTER": "none",
        "TAILWIRE_LOG_JSON": "false",
    }
    with log.open("wb") as out:
        agent = subprocess.Popen(
            [sys.executable, "-m", "tailwire.cli", "run", "nodeagent", "--dry-run"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        await system.eventually(lambda: _ready(health), within=30, what="a ready agent")
        (tmp_path / "nats.conf").write_text(_config(port, tmp_path / "js", agent_password="new"))
        assert server.process is not None
        server.process.send_signal(signal.SIGHUP)  # nats-server reloads its config
        try:
            await system.eventually(lambda: agent.poll() is not None, within=30, what="exit")
        except TimeoutError as exc:
            raise AssertionError(f"{exc}\n{log.read_text()}") from None
        assert "NATS connection closed for good (nats: authorization failed)" in log.read_text()
        assert agent.returncode == runtime.EXIT_CONNECTION_CLOSED
    finally:
        if agent.poll() is None:
            agent.kill()
        agent.wait(timeout=10)
        server.stop()
