"""The watch loops: list-then-watch per resource, resumed, relisted and resynced.

Responsible for: one `Mirror` per watched resource (and namespace, when the scope is a list
of namespaces) that lists, publishes what differs from what consumers already have, then
watches from the list's resourceVersion; resumes from the last version after a timeout or a
dropped connection; relists on 410 Gone (publishing tombstones for objects deleted in the
meantime); relists periodically, republishing nothing when nothing changed; reports a
missing CRD once and looks again later; and backs off with jitter while the API is down.
`PublishQueue` keeps a window of publishes in flight, never two for the same subject, and
retries each one until JetStream acknowledges it, so no change is lost while NATS is away.

Must not: normalize or compare objects itself (domain does), speak HTTP or NATS (adapters
do), or sleep on the real clock directly: `sleep`, `clock` and `rand` are injected.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Protocol

from tailwire.services.watcher import config, domain, metrics
from tailwire.services.watcher.adapters import kube
from tailwire.shared import cancelling, errors, subjects
from tailwire.shared.events import base

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]
Rand = Callable[[], float]


class Reader(Protocol):
    async def list(
        self,
        resource: domain.Resource,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        page_size: int = 500,
    ) -> kube.Listing: ...

    def watch(
        self,
        resource: domain.Resource,
        *,
        resource_version: str,
        namespace: str | None = None,
        label_selector: str | None = None,
        timeout_seconds: int = 300,
    ) -> AsyncGenerator[kube.WatchEvent, None]: ...


class Publisher(Protocol):
    async def publish(self, snapshot: domain.Snapshot) -> None: ...


class PublishQueue:
    """Publishes in order per subject, up to `window` at once, retrying until acknowledged."""

    def __init__(
        self,
        *,
        publisher: Publisher,
        window: int,
        backoff: domain.Backoff,
        sleep: Sleep,
        rand: Rand,
    ) -> None:
        self.publisher = publisher
        self.backoff = backoff
        self.sleep = sleep
        self.rand = rand
        self._slots = asyncio.Semaphore(window)
        self._tails: dict[str, asyncio.Task[None]] = {}

    async def put(self, snapshot: domain.Snapshot) -> None:
        await self._slots.acquire()
        subject = domain.subject_of(snapshot)
        previous = self._tails.get(subject)
        task = asyncio.create_task(
            self._publish(snapshot, after=previous, decided=time.monotonic())
        )
        self._tails[subject] = task
        task.add_done_callback(lambda done: self._finished(subject, done))

    def _finished(self, subject: str, task: asyncio.Task[None]) -> None:
        self._slots.release()
        if self._tails.get(subject) is task:
            del self._tails[subject]

    async def _publish(
        self, snapshot: domain.Snapshot, *, after: asyncio.Task[None] | None, decided: float
    ) -> None:
        if after is not None:
            await asyncio.wait([after])  # order per subject: the older change lands first
        attempt = 0
        while True:
            try:
                await self.publisher.publish(snapshot)
            except errors.BusError as exc:
                metrics.PUBLISH_FAILURES.labels(snapshot.kind.value).inc()
                delay = self.backoff.delay(attempt=attempt, rand=self.rand())
                log.warning("publishing %s failed, retrying in %.1fs: %s", snapshot.ref, delay, exc)
                attempt += 1
                await self.sleep(delay)
                continue
            metrics.PUBLISHED.labels(snapshot.kind.value).inc()
            metrics.PUBLISH_LAG.labels(snapshot.kind.value).observe(time.monotonic() - decided)
            return

    async def drain(self) -> None:
        """Wait until everything put so far is acknowledged."""
        while self._tails:
            await asyncio.wait(list(self._tails.values()))

    async def close(self) -> None:
        await cancelling.cancel_and_wait(self._tails.values())


class Mirror:
    """Keeps one resource (in one namespace, or all) mirrored onto the bus."""

    def __init__(
        self,
        *,
        resource: domain.Resource,
        reader: Reader,
        queue: PublishQueue,
        settings: config.WatcherSettings,
        published: dict[str, domain.Snapshot],
        namespace: str | None = None,
        namespaces: frozenset[str] = frozenset(),
        sleep: Sleep,
        clock: Clock,
        rand: Rand,
    ) -> None:
        self.resource = resource
        self.kind = resource.kind.value
        self.reader = reader
        self.queue = queue
        self.settings = settings
        self.namespace = namespace
        self.selected = domain.selector_for(resource, namespaces=namespaces)
        self.label_selector = (
            settings.watch_pod_label_selector if resource.kind is subjects.Kind.POD else None
        )
        # What consumers have, per subject: live snapshots only (tombstones are forgotten).
        self.published = {s: snap for s, snap in published.items() if not snap.deleted}
        self.resource_version: str | None = None
        self.listed_at: float | None = None
        self.events_in_watch = 0
        self.empty_watches = 0  # in a row: a server ending every watch at once is backed off
        self.sleep = sleep
        self.clock = clock
        self.rand = rand
        self.backoff = domain.Backoff(
            initial=settings.watch_backoff_initial, maximum=settings.watch_backoff_max
        )
        self.where = f"{self.kind}" + (f" in {namespace}" if namespace else "")

    # --- one step at a time (tests drive these directly) ------------------------------------

    async def relist(self, *, reason: str) -> int:
        """List everything and publish what differs; returns how many changes it published."""
        listing = await self.reader.list(
            self.resource,
            namespace=self.namespace,
            label_selector=self.label_selector,
            page_size=self.settings.watch_list_page_size,
        )
        metrics.RELISTS.labels(self.kind, reason).inc()
        listed = [
            snapshot
            for obj in listing.items
            if self.selected(obj)
            if (snapshot := self._normalize(obj)) is not None
        ]
        changes = domain.diff_listing(published=self.published, listed=listed)
        for change in changes:
            await self._emit(change)
        unchanged = len(listed) - sum(1 for c in changes if not c.deleted)
        metrics.SUPPRESSED.labels(self.kind).inc(unchanged)
        self.resource_version = listing.resource_version
        self.listed_at = self.clock()
        log.info(
            "listed %s (%s): %d objects, %d changes published, version %s",
            self.where,
            reason,
            len(listed),
            len(changes),
            listing.resource_version,
        )
        return len(changes)

    async def handle(self, event: kube.WatchEvent) -> None:
        """One watch event: publish the snapshot or tombstone if consumers would see news."""
        metrics.EVENTS.labels(self.kind, event.type).inc()
        if event.resource_version:
            self.resource_version = event.resource_version
        self.events_in_watch += 1
        if event.type == "BOOKMARK":
            return
        selected = self.selected(event.object)
        snapshot = self._normalize(event.object)
        if snapshot is None:
            return
        subject = domain.subject_of(snapshot)
        if not selected and subject not in self.published:
            return  # outside the selection and never published: nothing to say
        if event.type == "DELETED" or not selected:
            snapshot = domain.tombstone(snapshot)
        if domain.needs_publish(published=self.published.get(subject), current=snapshot):
            await self._emit(snapshot)
        else:
            metrics.SUPPRESSED.labels(self.kind).inc()

    async def watch(self) -> None:
        """Watch from the current version until the server ends the stream or a resync is due."""
        assert self.resource_version is not None
        timeout = self.settings.watch_timeout
        if self.listed_at is not None:
            until_resync = self.settings.watch_resync_interval - (self.clock() - self.listed_at)
            timeout = max(1, min(timeout, int(until_resync) + 1))
        events = self.reader.watch(
            self.resource,
            resource_version=self.resource_version,
            namespace=self.namespace,
            label_selector=self.label_selector,
            timeout_seconds=timeout,
        )
        self.events_in_watch = 0
        async with contextlib.aclosing(events):
            async for event in events:
                await self.handle(event)
                if self._resync_due():
                    return

    def _resync_due(self) -> bool:
        return (
            self.listed_at is not None
            and self.clock() - self.listed_at >= self.settings.watch_resync_interval
        )

    async def _emit(self, snapshot: domain.Snapshot) -> None:
        subject = domain.subject_of(snapshot)
        if (size := len(snapshot.to_bytes())) > base.MAX_MESSAGE_BYTES:
            # Retrying cannot help; consumers keep the previous snapshot until it shrinks.
            metrics.REJECTED.labels(self.kind).inc()
            log.error(
                "cannot mirror %s: its snapshot is %d bytes, over the bus limit of %d",
                snapshot.ref,
                size,
                base.MAX_MESSAGE_BYTES,
            )
            return
        if snapshot.deleted:
            self.published.pop(subject, None)
        else:
            self.published[subject] = snapshot
        await self.queue.put(snapshot)

    def _normalize(self, obj: domain.JSON) -> domain.Snapshot | None:
        try:
            return domain.normalize(self.resource, obj)
        except domain.NormalizationError as exc:
            metrics.REJECTED.labels(self.kind).inc()
            log.warning("cannot mirror %s", exc)
            return None

    # --- the loop ----------------------------------------------------------------------------

    async def _pace_empty_watches(self) -> None:
        if self.events_in_watch:
            self.empty_watches = 0
            return
        self.empty_watches += 1
        if self.empty_watches >= 3:  # a quiet cluster ends one watch per timeout, not many
            await self.sleep(self.backoff.delay(attempt=self.empty_watches - 3, rand=self.rand()))

    async def run(self) -> None:
        """List, watch, resume, relist; forever, whatever the API does."""
        attempt = 0
        reason = "start"
        missing = False
        while True:
            try:
                if self.resource_version is None:
                    await self.relist(reason=reason)
                elif self._resync_due():
                    await self.relist(reason="resync")
                if missing:
                    log.info("%s is served again", self.where)
                    missing = False
                metrics.RESOURCE_AVAILABLE.labels(self.kind).set(1)
                metrics.API_REACHABLE.set(1)
                attempt = 0
                await self.watch()
                await self._pace_empty_watches()
            except kube.Expired as exc:
                log.info("%s: watch expired, relisting: %s", self.where, exc)
                self.resource_version, reason = None, "expired"
            except errors.NotFound as exc:
                metrics.RESOURCE_AVAILABLE.labels(self.kind).set(0)
                if not missing:
                    log.warning(
                        "%s is not served (CRD not installed?); looking again every %.0fs: %s",
                        self.where,
                        self.settings.watch_missing_crd_retry,
                        exc,
                    )
                    missing = True
                self.resource_version, reason = None, "start"
                await self.sleep(self.settings.watch_missing_crd_retry)
            except errors.BackendError as exc:
                metrics.API_REACHABLE.set(0)
                delay = self.backoff.delay(attempt=attempt, rand=self.rand())
                log.warning(
                    "%s: Kubernetes API unreachable or refusing, retrying in %.1fs: %s",
                    self.where,
                    delay,
                    exc,
                )
                attempt += 1
                if self.resource_version is None:
                    reason = "reconnect"
                await self.sleep(delay)
            except Exception:  # a bug must not end the mirroring: start over, after a pause
                delay = self.backoff.delay(attempt=attempt, rand=self.rand())
                log.exception("%s: unexpected failure, relisting in %.1fs", self.where, delay)
                attempt += 1
                self.resource_version, reason = None, "reconnect"
                await self.sleep(delay)
