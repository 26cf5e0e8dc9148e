"""Fixtures of the dnsupdater tests: a running dnsupdater, a producer, the DNS change feed."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from nats.aio.client import Client
from nats.js.api import DeliverPolicy
from opentelemetry.sdk.trace import TracerProvider

from tailwire.services.dnsupdater import app, config
from tailwire.shared import bus, settings, subjects
from tailwire.shared.events import cluster, dns
from tailwire.testing import bind


class ManualTicker:
    """The periodic repair, fired by the test instead of by the clock."""

    def __init__(self) -> None:
        self._fired = asyncio.Event()

    def fire(self) -> None:
        self._fired.set()

    async def wait(self) -> None:
        await self._fired.wait()
        self._fired.clear()


class Feed:
    """`tailwire.v1.dns.*.changed` as the dnsupdater published it."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self._sub: Any = None

    async def open(self) -> None:
        js = self.client.jetstream()
        self._sub = await js.subscribe(
            subjects.dns_filter(), ordered_consumer=True, deliver_policy=DeliverPolicy.NEW
        )

    async def next(self, *, within: float = 5.0) -> dns.DnsChanged:
        message = await self._sub.next_msg(timeout=within)
        return dns.DnsChanged.model_validate_json(message.data)

    async def nothing(self, *, within: float = 0.3) -> None:
        """No change was published (bounded wait: the absence of a message)."""
        with pytest.raises(TimeoutError):
            await self._sub.next_msg(timeout=within)


@pytest.fixture
def ticker() -> ManualTicker:
    return ManualTicker()


@pytest.fixture
async def feed(nats_client: Client) -> Feed:
    changes = Feed(nats_client)
    await changes.open()
    return changes


@pytest.fixture
async def producer(
    bus_settings: settings.BusSettings, tracer_provider: TracerProvider
) -> AsyncIterator[Callable[..., Any]]:
    """Publishes snapshots as the watcher does (subject, Nats-Msg-Id)."""
    broker = bus.make_broker(service="watcher", bus=bus_settings, tracer_provider=tracer_provider)
    await bus.connect_and_declare(broker, bus=bus_settings)
    await broker.start()

    async def publish(
        snapshot: cluster.ServiceSnapshot | cluster.GatewaySnapshot | cluster.HTTPRouteSnapshot,
    ) -> None:
        await bus.publish(
            broker, snapshot, subject=subjects.cluster(snapshot.ref), msg_id=snapshot.dedup_id
        )

    try:
        yield publish
    finally:
        await broker.stop()


def rfc2136_settings(server: bind.BindServer, **overrides: Any) -> config.DnsUpdaterSettings:
    values: dict[str, Any] = {
        "zones": [{"zone": "example.test", "backends": ["rfc2136"], "ttl": 60}],
        "rfc2136_server": server.host,
        "rfc2136_port": server.port,
        "tsig_key_name": server.key_name,
        "tsig_algorithm": server.key_algorithm,
        "tsig_secret": server.key_secret,
    }
    values.update(overrides)
    return config.DnsUpdaterSettings.model_validate(values)


@pytest.fixture
def start_dnsupdater(
    bus_settings: settings.BusSettings,
    tracer_provider: TracerProvider,
    ticker: ManualTicker,
    nats_client: Client,  # the streams declared, as their owner (the renderer) would
) -> Callable[..., contextlib.AbstractAsyncContextManager[app.Wired]]:
    @contextlib.asynccontextmanager
    async def start(
        *, dns_settings: config.DnsUpdaterSettings, **overrides: Any
    ) -> AsyncIterator[app.Wired]:
        wired = app.wire(
            bus_settings=bus_settings,
            tracer_provider=tracer_provider,
            dns_settings=dns_settings,
            ticker=overrides.pop("ticker", ticker),
            **overrides,
        )
        try:
            await wired.runtime.app.start()
        except BaseException:
            await wired.runtime.app.stop()  # a failed start-up leaves no connection behind
            raise
        try:
            yield wired
        finally:
            await wired.runtime.app.stop()

    return start


async def settle(wired: app.Wired) -> None:
    """Until the reconciler has finished a pass after everything already notified."""
    assert wired.reconciler is not None
    async with asyncio.timeout(5):
        await wired.reconciler.wait_for_pass(after=wired.reconciler.passes)


async def until(wired: app.Wired, condition: Callable[[], bool], *, within: float = 5.0) -> None:
    """Until `condition` holds, re-checked after every reconcile pass (bounded)."""
    assert wired.reconciler is not None
    async with asyncio.timeout(within):
        while not condition():
            passes = wired.reconciler.passes
            if condition():
                return
            try:
                async with asyncio.timeout(0.2):
                    await wired.reconciler.wait_for_pass(after=passes)
            except TimeoutError:
                continue
