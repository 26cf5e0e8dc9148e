"""The watcher as a whole: reach the Kubernetes API, recall what the bus holds, run the mirrors.

Responsible for: building the Kubernetes client (retrying with backoff while the API or its
configuration is unreachable, so `tailwire run watcher` keeps running and says why), reading
the last snapshot of every subject back from TAILWIRE_CLUSTER so a restart republishes
nothing that consumers already have, starting one `watching.Mirror` per resource (and per
namespace when the scope is a list), and stopping them all cleanly.

Must not: contain watch logic (watching does) or wire FastStream (app does).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable

from faststream.nats import NatsBroker
from kubernetes_asyncio import client
from opentelemetry import trace

from tailwire.services.watcher import config, domain, watching
from tailwire.services.watcher.adapters import kube, stream
from tailwire.shared import cancelling, errors, settings, subjects
from tailwire.shared.k8s import client as k8s_client

log = logging.getLogger(__name__)

SHUTDOWN_DRAIN_SECONDS = 5.0
ApiClientFactory = Callable[[settings.KubernetesSettings], Awaitable[client.ApiClient]]


class Watcher:
    def __init__(
        self,
        *,
        broker: NatsBroker,
        tracer: trace.Tracer,
        kube_settings: settings.KubernetesSettings,
        watcher_settings: config.WatcherSettings,
        api_client_factory: ApiClientFactory = k8s_client.api_client,
        sleep: watching.Sleep = asyncio.sleep,
        clock: watching.Clock = time.monotonic,
        rand: watching.Rand = random.random,
        tombstone_ttl: int | None = None,
    ) -> None:
        self.broker = broker
        self.publisher = stream.Publisher(broker=broker, tracer=tracer, tombstone_ttl=tombstone_ttl)
        self.kube_settings = kube_settings
        self.settings = watcher_settings
        self.api_client_factory = api_client_factory
        self.sleep = sleep
        self.clock = clock
        self.rand = rand
        self.backoff = domain.Backoff(
            initial=watcher_settings.watch_backoff_initial,
            maximum=watcher_settings.watch_backoff_max,
        )
        self.mirrors: list[watching.Mirror] = []
        self.queues: list[watching.PublishQueue] = []
        self.started = asyncio.Event()  # set once every mirror runs (tests wait on it)
        self._api_client: client.ApiClient | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def resources(self) -> tuple[domain.Resource, ...]:
        kinds = set(self.settings.watch_kinds)
        return tuple(r for r in domain.RESOURCES if not kinds or r.kind in kinds)

    async def start(self) -> None:
        """Start in the background (an after_startup hook: it must not block the app)."""
        self._task = asyncio.create_task(self.run(), name="tailwire-watcher")

    async def stop(self) -> None:
        if self._task is not None:
            await cancelling.cancel_and_wait([self._task])
            self._task = None

    async def drain(self) -> None:
        """Wait until every change decided so far is acknowledged by JetStream."""
        for queue in self.queues:
            await queue.drain()

    async def run(self) -> None:
        try:
            api_client = await self._connect()
            reader = kube.KubeReader(api_client)
            seeded = {r.kind: await self._recall(r) for r in self.resources}
            async with asyncio.TaskGroup() as group:
                for resource in self.resources:
                    for namespace in self._scopes(resource):
                        mirror = self._mirror(
                            resource, namespace=namespace, reader=reader, seeded=seeded
                        )
                        group.create_task(mirror.run(), name=f"watch {mirror.where}")
                self.started.set()
        finally:
            # Stopping: give what is in flight a moment to be acknowledged. Whatever is not
            # is found again by the next start's relist (it differs from the bus).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(SHUTDOWN_DRAIN_SECONDS):
                    await self.drain()
            for queue in self.queues:
                await queue.close()
            if self._api_client is not None:
                await self._api_client.close()
                self._api_client = None

    def _scopes(self, resource: domain.Resource) -> list[str | None]:
        namespaces = self.kube_settings.watch_namespaces
        return list(namespaces) if resource.namespaced and namespaces else [None]

    def _mirror(
        self,
        resource: domain.Resource,
        *,
        namespace: str | None,
        reader: watching.Reader,
        seeded: dict[subjects.Kind, dict[str, domain.Snapshot]],
    ) -> watching.Mirror:
        queue = watching.PublishQueue(
            publisher=self.publisher,
            window=self.settings.watch_publish_window,
            backoff=self.backoff,
            sleep=self.sleep,
            rand=self.rand,
        )
        published = {
            subject: snapshot
            for subject, snapshot in seeded[resource.kind].items()
            if namespace is None or snapshot.meta.namespace == namespace
        }
        mirror = watching.Mirror(
            resource=resource,
            reader=reader,
            queue=queue,
            settings=self.settings,
            published=published,
            namespace=namespace,
            namespaces=frozenset(self.kube_settings.watch_namespaces),
            sleep=self.sleep,
            clock=self.clock,
            rand=self.rand,
        )
        self.queues.append(queue)
        self.mirrors.append(mirror)
        return mirror

    async def _connect(self) -> client.ApiClient:
        attempt = 0
        while True:
            try:
                self._api_client = await self.api_client_factory(self.kube_settings)
                return self._api_client
            except errors.TailwireError as exc:
                delay = self.backoff.delay(attempt=attempt, rand=self.rand())
                log.warning(
                    "Kubernetes API unreachable (no usable configuration), retrying in %.1fs: %s",
                    delay,
                    exc,
                )
                attempt += 1
                await self.sleep(delay)

    async def _recall(self, resource: domain.Resource) -> dict[str, domain.Snapshot]:
        attempt = 0
        while True:
            try:
                found = await stream.read_last_snapshots(self.broker.connection, kind=resource.kind)
                log.info("recalled %d %s snapshots from the bus", len(found), resource.kind)
                return found
            except errors.BusError as exc:
                delay = self.backoff.delay(attempt=attempt, rand=self.rand())
                log.warning("reading the last snapshots failed, retrying in %.1fs: %s", delay, exc)
                attempt += 1
                await self.sleep(delay)
