"""What the HA tests share: a service process with leader election, polling, HTTP probes."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import aiohttp

LEASE_SECONDS = 3.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def elected_service(
    service: str,
    *,
    identity: str,
    port: int,
    nats_url: str,
    kubeconfig: Path,
    log: Path,
    env: Mapping[str, str] | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """`tailwire run <service>` with leader election on a short Lease; killed at exit."""
    environment = {
        **os.environ,
        "TAILWIRE_NATS_URL": nats_url,
        "TAILWIRE_KUBECONFIG": str(kubeconfig),
        "KUBECONFIG": str(kubeconfig),
        "TAILWIRE_TRACES_EXPORTER": "none",
        "TAILWIRE_HEALTH_PORT": str(port),
        "TAILWIRE_LEADER_ELECTION": "true",
        "TAILWIRE_POD_NAME": identity,
        "TAILWIRE_LEASE_DURATION": str(LEASE_SECONDS),
        "TAILWIRE_LEASE_RENEW_DEADLINE": "2",
        "TAILWIRE_LEASE_RETRY_PERIOD": "0.5",
        **(env or {}),
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "tailwire.cli", "run", service],
            env=environment,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


async def eventually(check: object, *, within: float, what: str) -> None:
    assert callable(check)
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out after {within} s waiting for {what}")


async def http_get(port: int, path: str) -> tuple[int, str]:
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{port}{path}") as response,
        ):
            return response.status, await response.text()
    except aiohttp.ClientError:
        return 0, ""


@dataclasses.dataclass(frozen=True)
class Pair:
    """Two replicas of one service, by identity: their processes, health ports and logs."""

    processes: dict[str, subprocess.Popen[bytes]]
    ports: dict[str, int]
    log_dir: Path

    def logs(self) -> str:
        return "\n".join(
            f"--- {i}\n{(self.log_dir / f'{i}.log').read_text()[-3000:]}" for i in self.ports
        )


@contextlib.contextmanager
def elected_pair(
    service: str,
    *,
    nats_url: str,
    kubeconfig: Path,
    log_dir: Path,
    env: Mapping[str, str] | None = None,
) -> Iterator[Pair]:
    """`<service>-a` and `<service>-b`, each `elected_service`; both killed at exit."""
    ports = {f"{service}-a": free_port(), f"{service}-b": free_port()}
    with contextlib.ExitStack() as stack:
        processes = {
            identity: stack.enter_context(
                elected_service(
                    service,
                    identity=identity,
                    port=port,
                    nats_url=nats_url,
                    kubeconfig=kubeconfig,
                    log=log_dir / f"{identity}.log",
                    env=env,
                )
            )
            for identity, port in ports.items()
        }
        yield Pair(processes=processes, ports=ports, log_dir=log_dir)
