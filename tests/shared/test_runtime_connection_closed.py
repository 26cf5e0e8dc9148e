"""A service whose NATS connection is closed for good exits instead of lingering alive.

nats-py reconnects by itself; it closes for good when the server refuses the credentials of
a live connection. Realistic case: a password rotated in the Secret and nats-server
reloaded. The service logs why and exits, so its supervisor restarts it with the new
password. It exits at once (code 3): FastStream's pull consumers would otherwise spin on
the closed connection and starve the event loop, so not even SIGTERM would be handled."""

from __future__ import annotations

import signal
from pathlib import Path

from tailwire.shared import permissions, runtime
from tailwire.testing import natsserver
from tailwire.testing.system import processes

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


async def test_a_service_refused_after_a_password_rotation_exits(tmp_path: Path) -> None:
    port = natsserver.free_port()
    server = natsserver.NatsServer(
        store_dir=tmp_path,
        port=port,
        config_text=_config(port, tmp_path / "js", agent_password="old"),
    )
    server.start()
    # The streams a nodeagent waits for, declared by their owner.
    await natsserver.declare_as_owner(server.url, password="r")
    agent = processes.dry_run_nodeagent(
        log_dir=tmp_path,
        env={
            "TAILWIRE_NATS_URL": server.url,
            "TAILWIRE_NATS_USER": USER,
            "TAILWIRE_NATS_PASSWORD": "old",
            "TAILWIRE_NODE_NAME": NODE,
        },
    )
    agent.start()
    try:
        await agent.wait_ready(within=30)
        (tmp_path / "nats.conf").write_text(_config(port, tmp_path / "js", agent_password="new"))
        assert server.process is not None
        server.process.send_signal(signal.SIGHUP)  # nats-server reloads its config
        code = await agent.wait(within=30)
        log = agent.log_tail(200)
        assert code == runtime.EXIT_CONNECTION_CLOSED, log
        assert "NATS connection closed for good (nats: authorization failed)" in log
    finally:
        await agent.kill()
        server.stop()
