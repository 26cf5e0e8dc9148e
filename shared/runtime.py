"""What every service process does the same way: settings, telemetry, broker, streams.

`build_app` wires a service's router into a FastStream app on one NATS connection that
declares the streams before any subscriber attaches, and stops cleanly on SIGTERM/SIGINT
(FastStream installs the handlers in `FastStream.run`). Services add their own startup and
shutdown hooks (watch loops, timers); this module holds none of their logic.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable, Sequence

from faststream import FastStream
from faststream.nats import NatsBroker, NatsRouter
from opentelemetry.sdk.trace import TracerProvider

from tailwire.shared import bus, health, settings, subjects, telemetry

log = logging.getLogger(__name__)

Hook = Callable[[], Awaitable[None]]


@dataclasses.dataclass(kw_only=True)
class ServiceRuntime:
    """The pieces of one running service, handed to its hooks and tests."""

    service: subjects.Service
    broker: NatsBroker
    app: FastStream
    bus_settings: settings.BusSettings
    tracer_provider: TracerProvider
    health: health.HealthServer | None


def build_app(
    *,
    service: subjects.Service,
    routers: Sequence[NatsRouter] = (),
    bus_settings: settings.BusSettings | None = None,
    tracer_provider: TracerProvider | None = None,
    on_startup: Sequence[Hook] = (),
    after_startup: Sequence[Hook] = (),
    on_shutdown: Sequence[Hook] = (),
    health_port: int | None = None,
    inbox_prefix: str | None = None,
    ensure_streams: tuple[str, ...] | None = None,
) -> ServiceRuntime:
    """`inbox_prefix`: see `bus.make_broker`. `ensure_streams`: declare the streams only when
    one of these is missing, and wait for them when this user may not declare them (a
    confined nodeagent; see `bus.connect_and_ensure`).
    """
    bus_settings = bus_settings or settings.BusSettings()
    tel = settings.TelemetrySettings()
    if health_port is None:
        health_port = tel.health_port
    health_server = health.HealthServer(port=health_port) if health_port is not None else None
    if tracer_provider is None:
        tracer_provider = telemetry.setup_tracing(
            service_name=f"tailwire-{service}", exporter=tel.traces_exporter
        )
    broker = bus.make_broker(
        service=service,
        bus=bus_settings,
        tracer_provider=tracer_provider,
        inbox_prefix=inbox_prefix,
    )
    for router in routers:
        broker.include_router(router)

    async def declare_streams() -> None:
        if ensure_streams is not None:
            await bus.connect_and_ensure(broker, bus=bus_settings, streams=ensure_streams)
            log.info("%s connected to %s; streams present", service, bus_settings.nats_url)
            return
        await bus.connect_and_declare(broker, bus=bus_settings)
        log.info("%s connected to %s; streams declared", service, bus_settings.nats_url)

    async def start_health() -> None:
        if health_server is not None:
            await health_server.start()

    async def mark_ready() -> None:
        if health_server is not None:
            health_server.ready = True
        log.info("%s ready", service)

    async def stop_health() -> None:
        if health_server is not None:
            await health_server.stop()

    async def flush_traces() -> None:
        tracer_provider.force_flush()

    app = FastStream(
        broker,
        on_startup=[start_health, declare_streams, *on_startup],
        after_startup=[*after_startup, mark_ready],
        on_shutdown=[stop_health, *on_shutdown, flush_traces],
    )
    return ServiceRuntime(
        service=service,
        broker=broker,
        app=app,
        bus_settings=bus_settings,
        tracer_provider=tracer_provider,
        health=health_server,
    )
