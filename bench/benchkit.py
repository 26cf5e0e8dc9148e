"""Shared pieces of the benchmarks that run services as processes: start `tailwire run
<service>` with an environment, wait for `/readyz`, read a process's memory and CPU time
from /proc, describe the machine's load. Not a benchmark itself (the Makefile runs
`bench/bench_*.py` only); must not hold measurement logic of any one benchmark.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import httpx

TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def load() -> float:
    """The 1-minute load average, reported next to each figure (the machine is shared)."""
    return round(os.getloadavg()[0], 2)


def memory_mib(pid: int) -> dict[str, float]:
    """VmRSS (now) and VmHWM (peak resident) of a process, in MiB."""
    found: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key.lower() + "_mib"] = round(int(value.split()[0]) / 1024, 1)
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return round((int(fields[11]) + int(fields[12])) / TICKS, 2)


class Service:
    """One `tailwire run <name>` process with its own health port."""

    def __init__(self, name: str, *, env: Mapping[str, str], args: tuple[str, ...] = ()) -> None:
        self.name = name
        self.port = free_port()
        # The service's log: in BENCH_LOG_DIR when set, else a temp file (its tail is
        # reported when the process died).
        log_dir = os.environ.get("BENCH_LOG_DIR")
        self.log = (
            open(Path(log_dir) / f"{name}-{self.port}.log", "w+b")  # noqa: SIM115
            if log_dir
            else tempfile.TemporaryFile()  # noqa: SIM115
        )
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tailwire.cli", "run", name, *args],
            env={
                **os.environ,
                "TAILWIRE_TRACES_EXPORTER": "none",
                "TAILWIRE_LOG_LEVEL": "WARNING",
                **env,
                "TAILWIRE_HEALTH_PORT": str(self.port),
            },
            stdout=subprocess.DEVNULL,
            stderr=self.log,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    async def ready(self, *, limit: float = 60.0) -> None:
        deadline = time.monotonic() + limit
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.port}") as http:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"{self.name} exited with {self.process.returncode}")
                try:
                    if (await http.get("/readyz")).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{self.name} not ready after {limit} s")
                await asyncio.sleep(0.1)

    def figures(self) -> dict[str, float | int | str | None]:
        if self.process.poll() is not None:
            self.log.seek(0)
            tail = self.log.read()[-1500:].decode(errors="replace")
            return {"exited": self.process.returncode, "log_tail": tail}
        return {**memory_mib(self.pid), "cpu_seconds": cpu_seconds(self.pid)}

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


async def until(predicate: Callable[[], bool], *, limit: float, poll: float = 0.01) -> bool:
    """Wait until `predicate` holds (polled); False if `limit` seconds passed first."""
    deadline = time.monotonic() + limit
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(poll)
    return True
