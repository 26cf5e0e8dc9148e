"""One service as its own `python -m tailwire.cli run <service>` process.

`ServiceProcess` remembers how it was started (argv, environment, health port, log file), so
the launcher can stop it, kill -9 it and start it again exactly as before. Each process runs
in its own session (Ctrl-C at a terminal reaches the launcher, which stops the services in
order) and dies with the launcher (`PR_SET_PDEATHSIG`), so a killed launcher leaves no orphan.
Its stderr (the JSON log) goes to `log_path`.

Must not: decide what runs (the launcher does) or talk to the bus.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import aiohttp

from tailwire.testing import natsserver

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    libc_name = ctypes.util.find_library("c")
    if libc_name:
        libc = ctypes.CDLL(libc_name, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class ServiceNotReady(RuntimeError):
    """A service exited or did not answer /readyz in time; carries its log's tail."""


class ServiceProcess:
    """A service process that can be started, stopped, killed and started again."""

    def __init__(
        self,
        *,
        name: str,
        argv: Sequence[str],
        env: Mapping[str, str],
        health_port: int,
        log_path: Path,
    ) -> None:
        self.name = name  # "watcher", ..., or "nodeagent/<node>"
        self.argv = tuple(argv)
        self.env = dict(env)
        self.health_port = health_port
        self.log_path = log_path
        self.popen: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @classmethod
    def for_service(
        cls,
        *,
        service: str,
        node: str | None,
        env: Mapping[str, str],
        health_port: int,
        log_dir: Path,
        args: Sequence[str] = (),
    ) -> ServiceProcess:
        argv = [sys.executable, "-m", "tailwire.cli", "run", service, *args]
        if node is not None:
            argv += ["--node", node]
        name = f"{service}/{node}" if node is not None else service
        log_name = name.replace("/", "-") + ".log"
        return cls(
            name=name,
            argv=argv,
            env={**env, "TAILWIRE_HEALTH_PORT": str(health_port)},
            health_port=health_port,
            log_path=log_dir / log_name,
        )

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen is not None else None

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    @property
    def returncode(self) -> int | None:
        return self.popen.returncode if self.popen is not None else None

    def start(self) -> None:
        if self.running:
            return
        with self.log_path.open("ab") as log:
            self.popen = subprocess.Popen(
                list(self.argv),
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
        self.starts += 1

    async def is_ready(self) -> bool:
        """One probe of /readyz."""
        timeout = aiohttp.ClientTimeout(total=1)
        url = f"http://127.0.0.1:{self.health_port}/readyz"
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url) as r:
                return r.status == 200
        return False

    async def wait_ready(self, *, within: float = 30.0) -> None:
        """Until /readyz answers 200; ServiceNotReady if the process exits or time runs out."""
        url = f"http://127.0.0.1:{self.health_port}/readyz"
        deadline = time.monotonic() + within
        timeout = aiohttp.ClientTimeout(total=1)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while time.monotonic() < deadline:
                if not self.running:
                    raise ServiceNotReady(
                        f"{self.name} exited with {self.returncode}:\n{self.log_tail()}"
                    )
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with session.get(url) as response:
                        if response.status == 200:
                            return
                await asyncio.sleep(0.05)
        raise ServiceNotReady(f"{self.name} not ready within {within} s:\n{self.log_tail()}")

    def signal(self, sig: int) -> None:
        if self.running and self.popen is not None:
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(sig)

    async def wait(self, *, within: float) -> int | None:
        """Wait for the process to exit; its return code, or None if it is still running."""
        deadline = time.monotonic() + within
        while self.popen is not None and self.popen.poll() is None:
            if time.monotonic() >= deadline:
                return None
            await asyncio.sleep(0.02)
        return self.returncode

    async def kill(self) -> None:
        """kill -9, as a crash: no shutdown hooks run."""
        self.signal(signal.SIGKILL)
        await self.wait(within=10)

    async def stop(self, *, within: float = 15.0) -> int | None:
        """SIGTERM, then SIGKILL after `within` seconds; the return code of the SIGTERM.

        A process that ignores SIGTERM first gets SIGUSR1, on which a service writes every
        thread's stack to its log (`tailwire run` registers faulthandler), so the log says
        where it hung."""
        if not self.running:
            return self.returncode
        self.signal(signal.SIGTERM)
        code = await self.wait(within=within)
        if code is None:
            self.signal(signal.SIGUSR1)
            await self.wait(within=1.0)
            await self.kill()
        return code

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def environ_passthrough(self) -> dict[str, str]:
        """The environment minus secrets, for reports."""
        return {k: v for k, v in self.env.items() if "PASSWORD" not in k and "SECRET" not in k}


def dry_run_nodeagent(
    *, log_dir: Path, env: Mapping[str, str], node: str | None = None
) -> ServiceProcess:
    """`tailwire run nodeagent --dry-run`: a real service process on the bus that prints its
    netlink and nftables changes instead of making them, for tests of connections, signals
    and settings. `env` adds to this process's environment (TAILWIRE_NATS_URL at least);
    traces are off and logs plain text."""
    return ServiceProcess.for_service(
        service="nodeagent",
        node=node,
        env={
            **os.environ,
            "TAILWIRE_TRACES_EXPORTER": "none",
            "TAILWIRE_LOG_JSON": "false",
            **env,
        },
        health_port=natsserver.free_port(),
        log_dir=log_dir,
        args=("--dry-run",),
    )


def base_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The launcher's environment without any TAILWIRE_*/OTEL_*/KUBECONFIG it happens to
    carry: every setting a service gets is given explicitly by the launcher."""
    environ = os.environ if environ is None else environ
    return {
        k: v
        for k, v in environ.items()
        if not k.startswith(("TAILWIRE_", "OTEL_")) and k != "KUBECONFIG"
    }
