"""`tailwire run <service>`: build the service's runtime and serve until a signal."""

from __future__ import annotations

import asyncio
import enum
import faulthandler
import logging
import signal

from tailwire.services.dnsupdater import app as dnsupdater_app
from tailwire.services.keyminter import app as keyminter_app
from tailwire.services.nodeagent import app as nodeagent_app
from tailwire.services.renderer import app as renderer_app
from tailwire.services.watcher import app as watcher_app
from tailwire.shared import errors, runtime, settings, telemetry


class ServiceName(enum.StrEnum):
    WATCHER = "watcher"
    KEYMINTER = "keyminter"
    RENDERER = "renderer"
    DNSUPDATER = "dnsupdater"
    NODEAGENT = "nodeagent"


def create(
    service: ServiceName, *, node: str | None = None, dry_run: bool = False
) -> runtime.ServiceRuntime:
    if service is ServiceName.NODEAGENT:
        return nodeagent_app.create(node_name=node, dry_run=dry_run)
    if node is not None or dry_run:
        raise errors.ConfigurationError("--node and --dry-run apply to the nodeagent only")
    factories = {
        ServiceName.WATCHER: watcher_app.create,
        ServiceName.KEYMINTER: keyminter_app.create,
        ServiceName.RENDERER: renderer_app.create,
        ServiceName.DNSUPDATER: dnsupdater_app.create,
    }
    return factories[service]()


async def run_service(
    service: ServiceName, *, node: str | None = None, dry_run: bool = False
) -> None:
    tel = settings.TelemetrySettings()
    telemetry.configure_logging(
        service=f"tailwire-{service}", level=tel.log_level, as_json=tel.log_json
    )
    # `kill -USR1 <pid>` writes every thread's stack to stderr (the log) without stopping
    # the service: works even when the event loop is stuck, which is when it is needed.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    service_runtime = create(service, node=node, dry_run=dry_run)
    # A signal during start-up must still stop the service cleanly: FastStream installs its
    # own handlers only once `run` begins, so until then ours ask the app to exit.
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, service_runtime.app.exit)
    await service_runtime.app.run(log_level=logging.getLevelName(tel.log_level.upper()))
