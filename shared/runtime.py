"""What every service process does the same way: settings, telemetry, broker, streams.

`build_app` wires a service's router into a FastStream app on one NATS connection on which
the streams exist before any subscriber attaches (the streams' owner, `bus.STREAM_OWNER`,
declares them; every other service waits until the streams it uses exist), and stops cleanly
on SIGTERM/SIGINT (FastStream installs the handlers in `FastStream.run`). Services add their
own startup and shutdown hooks (watch loops, timers); this module holds none of their logic.

A central service built with `elected=True` campaigns for its Kubernetes Lease when
TAILWIRE_LEADER_ELECTION is true (`shared.leadership`): it connects, declares the streams and
reports ready, but its own start-up hooks, its subscribers and its after-startup work begin
only once it leads, exactly as on a fresh start (every service converges from the bus on
start). A leader that loses its Lease stops the process, which then comes back as a standby.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Mapping, Sequence

from faststream import FastStream
from faststream.nats import NatsBroker, NatsRouter
from kubernetes_asyncio import client as kube
from opentelemetry.sdk.trace import TracerProvider

from tailwire.shared import (
    bus,
    cancelling,
    health,
    leadership,
    metering,
    settings,
    subjects,
    telemetry,
)
from tailwire.shared.k8s import client as k8s_client

log = logging.getLogger(__name__)

# The exit code of a service whose NATS connection was closed for good (see build_app).
EXIT_CONNECTION_CLOSED = 3

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
    elector: leadership.Elector | None = None


def default_elector(*, service: subjects.Service) -> leadership.Elector | None:
    """The Lease campaign of a central service, when TAILWIRE_LEADER_ELECTION is true."""
    lead = settings.LeadershipSettings()
    if not lead.leader_election:
        return None
    kube_settings = settings.KubernetesSettings()

    async def open_client() -> kube.ApiClient:
        return await k8s_client.api_client(kube_settings)

    return leadership.Elector(
        name=f"tailwire-{service}",
        namespace=kube_settings.namespace,
        identity=lead.pod_name or f"{socket.gethostname()}-{os.getpid()}",
        api_client_factory=open_client,
        timing=leadership.Timing(
            lease_seconds=lead.lease_duration,
            renew_deadline=lead.lease_renew_deadline,
            retry_seconds=lead.lease_retry_period,
        ),
    )


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
    elected: bool = False,
    elector: leadership.Elector | None = None,
    inbox_prefix: str | None = None,
    stream_probes: Mapping[str, str] | None = None,
) -> ServiceRuntime:
    """`elected`: a central service that runs its work only while it leads (when leader
    election is turned on); `elector` overrides the one built from the settings (tests).

    `inbox_prefix`: see `bus.make_broker` (a central service's own by default).
    `stream_probes`: see `bus.connect_and_wait` (`probes`).
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
    stopping: list[bool] = []

    async def connection_closed() -> None:
        # nats-py reconnects by itself; it closes for good only on an error it will not retry
        # (the server refusing a live connection's credentials, e.g. after a password
        # rotation). A service without a connection must not linger looking alive, and it
        # cannot shut down gracefully either: FastStream's pull consumers then spin on
        # ConnectionClosedError without yielding, starving the event loop. So it flushes what
        # it can and exits at once with EXIT_CONNECTION_CLOSED; its supervisor restarts it.
        if stopping:
            return  # our own shutdown closed it
        error = broker.connection.last_error if broker.connection is not None else None
        if error is None:
            return
        log.error(
            "%s: NATS connection closed for good (%s); exiting with code %d",
            service,
            error,
            EXIT_CONNECTION_CLOSED,
        )
        with contextlib.suppress(Exception):
            tracer_provider.force_flush(timeout_millis=2000)
        logging.shutdown()
        os._exit(EXIT_CONNECTION_CLOSED)

    broker = bus.make_broker(
        service=service,
        bus=bus_settings,
        tracer_provider=tracer_provider,
        inbox_prefix=inbox_prefix,
        closed_cb=connection_closed,
    )
    metering.instrument(broker, service=service)
    if elected and elector is None:
        elector = default_elector(service=service)
    for router in routers:
        broker.include_router(router)

    async def declare_streams() -> None:
        if service is not bus.STREAM_OWNER:
            streams = bus.STREAMS_USED[service]
            await bus.connect_and_wait(
                broker, bus=bus_settings, streams=streams, probes=stream_probes
            )
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

    async def await_leadership() -> None:
        if elector is None:
            return
        # A standby is connected and ready; it only waits to lead.
        if health_server is not None:
            health_server.ready = True
        log.info("%s standing by for Lease %s/%s", service, elector.namespace, elector.name)
        await elector.start()
        await elector.acquired.wait()
        log.info("%s leads; starting its work", service)

    following: list[asyncio.Task[None]] = []

    async def follow_token() -> None:
        # A granted token's grant expires with the token: reconnect when kubelet rotates it.
        if isinstance(broker, bus.GrantedBroker):
            connection = await broker.connect()
            following.append(asyncio.create_task(broker.token_file.follow(connection)))

    async def stop_following() -> None:
        await cancelling.cancel_and_wait(following)

    async def release_leadership() -> None:
        if elector is not None:
            await elector.stop()

    async def stop_health() -> None:
        if health_server is not None:
            await health_server.stop()

    async def note_stopping() -> None:
        stopping.append(True)

    async def flush_traces() -> None:
        tracer_provider.force_flush()

    app = FastStream(
        broker,
        on_startup=[start_health, declare_streams, await_leadership, *on_startup],
        after_startup=[*after_startup, follow_token, mark_ready],
        on_shutdown=[
            note_stopping,
            stop_following,
            stop_health,
            *on_shutdown,
            release_leadership,
            flush_traces,
        ],
    )
    if elector is not None:
        elector.on_lost = app.exit
    return ServiceRuntime(
        service=service,
        broker=broker,
        app=app,
        bus_settings=bus_settings,
        tracer_provider=tracer_provider,
        health=health_server,
        elector=elector,
    )
