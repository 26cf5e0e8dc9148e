"""Fixtures of the watcher tests: a watcher on the emulated API and a real nats-server, a
recorder of everything published on `tailwire.v1.cluster.>`, and a sleep that waits for the
test instead of the clock."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from opentelemetry.sdk.trace import TracerProvider

from tailwire.services.watcher import app, config, domain
from tailwire.shared import bus, settings, subjects
from tailwire.testing import kubeapi


@dataclasses.dataclass(frozen=True, kw_only=True)
class Published:
    subject: str
    snapshot: domain.Snapshot
    msg_id: str
    headers: dict[str, str]


class Recorder:
    """Every message published on the cluster subjects (a core subscription: duplicates that
    JetStream would drop are still seen, so 'no duplicate publish' is checked strictly)."""

    def __init__(self) -> None:
        self.messages: list[Published] = []
        self._changed = asyncio.Condition()

    async def on_message(self, msg: Msg) -> None:
        headers = dict(msg.headers or {})
        snapshot = domain.SNAPSHOT_ADAPTER.validate_json(msg.data)
        self.messages.append(
            Published(
                subject=msg.subject,
                snapshot=snapshot,
                msg_id=headers.get(bus.MSG_ID_HEADER, ""),
                headers=headers,
            )
        )
        async with self._changed:
            self._changed.notify_all()

    async def wait_for(
        self, predicate: Callable[[list[Published]], bool], *, within: float = 10.0
    ) -> list[Published]:
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(lambda: predicate(self.messages))
        return self.messages

    async def wait_count(self, count: int, *, within: float = 10.0) -> list[Published]:
        return await self.wait_for(lambda m: len(m) >= count, within=within)

    def since(self, mark: int) -> list[Published]:
        return self.messages[mark:]

    def names(self, mark: int = 0) -> list[tuple[str, str, bool]]:
        return sorted(
            (m.snapshot.kind.value, m.snapshot.meta.name, m.snapshot.deleted)
            for m in self.since(mark)
        )


@pytest.fixture
async def recorder(nats_client: Client) -> AsyncIterator[Recorder]:
    rec = Recorder()
    subscription = await nats_client.subscribe(subjects.cluster_filter(), cb=rec.on_message)
    yield rec
    await subscription.unsubscribe()


class FakeSleep:
    """An injected `sleep`: records each delay and returns only when the test advances."""

    def __init__(self) -> None:
        self.delays: list[float] = []
        self._tick = asyncio.Event()
        self._slept = asyncio.Condition()

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        async with self._slept:
            self._slept.notify_all()
        tick = self._tick
        await tick.wait()

    def advance(self) -> None:
        """Wake every sleeper."""
        tick, self._tick = self._tick, asyncio.Event()
        tick.set()

    async def wait_sleeps(self, count: int, *, within: float = 10.0) -> None:
        async with asyncio.timeout(within), self._slept:
            await self._slept.wait_for(lambda: len(self.delays) >= count)


class StartWatcher(Protocol):
    def __call__(self, **overrides: Any) -> contextlib.AbstractAsyncContextManager[app.Wired]: ...


@pytest.fixture
def fake_sleep() -> FakeSleep:
    return FakeSleep()


@pytest.fixture
def start_watcher(
    bus_settings: settings.BusSettings,
    kube_emulator: kubeapi.KubeAPI,
    tracer_provider: TracerProvider,
    fake_sleep: FakeSleep,
) -> StartWatcher:
    """Start a watcher app (broker, streams, watch loops) on the emulator; stop it on exit."""

    @contextlib.asynccontextmanager
    async def start(**overrides: Any) -> AsyncIterator[app.Wired]:
        watcher_settings = overrides.pop("watcher_settings", None) or config.WatcherSettings()
        kube_settings = overrides.pop("kube_settings", None) or settings.KubernetesSettings(
            kubeconfig=str(kube_emulator.kubeconfig_path)
        )
        wired = app.wire(
            bus_settings=bus_settings,
            tracer_provider=tracer_provider,
            kube_settings=kube_settings,
            watcher_settings=watcher_settings,
            sleep=overrides.pop("sleep", fake_sleep),
            **overrides,
        )
        await wired.runtime.app.start()
        try:
            yield wired
        finally:
            await wired.runtime.app.stop()

    return start


async def wait_watching(api: kubeapi.KubeAPI, *resources: str) -> None:
    """Until the watcher has a watch open on each resource (its lists are done)."""
    for resource in resources:
        await api.wait_for_watchers(resource, within=10.0)
