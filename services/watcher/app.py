"""Wiring of the watcher: settings -> broker -> watch loops -> lifespan. No logic lives here.

The watch loops start after the broker is connected and the streams are declared (an
after_startup hook, so they never block start-up) and stop before the broker closes (an
on_shutdown hook).
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time

from opentelemetry.sdk.trace import TracerProvider

from tailwire.services.watcher import config, mirroring, watching
from tailwire.shared import runtime, settings, subjects
from tailwire.shared.k8s import client as k8s_client


@dataclasses.dataclass(frozen=True, kw_only=True)
class Wired:
    runtime: runtime.ServiceRuntime
    watcher: mirroring.Watcher


def wire(
    *,
    bus_settings: settings.BusSettings | None = None,
    tracer_provider: TracerProvider | None = None,
    kube_settings: settings.KubernetesSettings | None = None,
    watcher_settings: config.WatcherSettings | None = None,
    health_port: int | None = None,
    api_client_factory: mirroring.ApiClientFactory = k8s_client.api_client,
    sleep: watching.Sleep = asyncio.sleep,
    clock: watching.Clock = time.monotonic,
    rand: watching.Rand = random.random,
) -> Wired:
    """The runtime and the watcher it runs (tests hold the watcher to drain or inspect it)."""
    bus_settings = bus_settings or settings.BusSettings()
    watchers: list[mirroring.Watcher] = []  # filled below; the hooks run after this returns

    async def start_watching() -> None:
        await watchers[0].start()

    async def stop_watching() -> None:
        await watchers[0].stop()

    service_runtime = runtime.build_app(
        service=subjects.Service.WATCHER,
        bus_settings=bus_settings,
        tracer_provider=tracer_provider,
        after_startup=[start_watching],
        on_shutdown=[stop_watching],
        health_port=health_port,
        elected=True,
    )
    watchers.append(
        mirroring.Watcher(
            broker=service_runtime.broker,
            tracer=service_runtime.tracer_provider.get_tracer("tailwire.watcher"),
            kube_settings=kube_settings or settings.KubernetesSettings(),
            watcher_settings=watcher_settings or config.WatcherSettings(),
            api_client_factory=api_client_factory,
            sleep=sleep,
            clock=clock,
            rand=rand,
            tombstone_ttl=bus_settings.tombstone_ttl,
        )
    )
    return Wired(runtime=service_runtime, watcher=watchers[0])


def create(
    *,
    bus_settings: settings.BusSettings | None = None,
    tracer_provider: TracerProvider | None = None,
) -> runtime.ServiceRuntime:
    """The watcher's runtime, from `TAILWIRE_*` settings unless given."""
    return wire(bus_settings=bus_settings, tracer_provider=tracer_provider).runtime
