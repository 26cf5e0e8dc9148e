"""The reconcile loop: view -> desired state -> backends, on every change and periodically.

Handlers only update the view and `notify`; one task here coalesces the notifications and
runs a pass: for every (zone, backend) it diffs the desired records against the last
applied set (the event path: no read, one write) or against a fresh read (start, retries
and the periodic repair, which catches records edited by hand). Nothing is written when
nothing differs. Each applied change is published as `DnsChanged` on
`tailwire.v1.dns.<zone>.changed`, in the trace of the snapshot that caused it.

Must not: talk to the bus for input, or compute DNS content itself (the domain does).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from opentelemetry import context as otel_context
from opentelemetry import trace

from tailwire.services.dnsupdater import config, metrics, views
from tailwire.services.dnsupdater.domain import exposures, externaldns, records
from tailwire.shared import errors
from tailwire.shared.events import dns as dns_events

log = logging.getLogger(__name__)


class ZoneBackend(Protocol):
    """A resolver that holds records of a zone (RFC 2136 server, CoreDNS hosts data)."""

    name: str
    owner_markers: bool
    wildcards: bool

    async def read(self, zone: str) -> frozenset[dns_events.Record]: ...

    async def apply(
        self, zone: str, *, change: records.Change, desired: frozenset[dns_events.Record]
    ) -> None: ...


class Ensurer(Protocol):
    """Settings-derived state kept on start and on every repair (Corefiles, split DNS)."""

    name: str

    async def ensure(self) -> bool: ...


class Annotator(Protocol):
    async def patch_annotations(self, patch: externaldns.AnnotationPatch) -> None: ...


class Ticker(Protocol):
    """Returns when the next periodic repair is due (tests fire it by hand)."""

    async def wait(self) -> None: ...


@dataclasses.dataclass(frozen=True, kw_only=True)
class IntervalTicker:
    interval: float

    async def wait(self) -> None:
        await asyncio.sleep(self.interval)


@dataclasses.dataclass(kw_only=True)
class ZoneTarget:
    zone: config.ZoneConfig
    backend: ZoneBackend
    # What the backend holds as far as we know; None means "read it first".
    applied: frozenset[dns_events.Record] | None = None
    # Names holding someone else's records at the last read: never taken over.
    foreign: frozenset[str] = frozenset()


@dataclasses.dataclass(frozen=True, kw_only=True)
class AnnotationPolicy:
    writer: Annotator
    prefix: str
    split_hostnames: tuple[str, ...]


Publish = Callable[[dns_events.DnsChanged], Awaitable[None]]


class Reconciler:
    def __init__(
        self,
        *,
        view: views.ClusterView,
        targets: Sequence[ZoneTarget],
        publish: Publish,
        ticker: Ticker,
        ensurers: Sequence[Ensurer] = (),
        annotation_policy: AnnotationPolicy | None = None,
        tracer: trace.Tracer | None = None,
        clock: Callable[[], float] = time.monotonic,
        retry_delay: float = 1.0,
        max_retry_delay: float = 30.0,
    ) -> None:
        self.view = view
        self.targets = list(targets)
        self.ensurers = list(ensurers)
        self.annotation_policy = annotation_policy
        self._publish = publish
        self._ticker = ticker
        self.tracer = tracer or trace.get_tracer(__name__)
        self._clock = clock
        self._retry_base = retry_delay
        self._retry_max = max_retry_delay
        self._retry_delay: float | None = None
        self._dirty = asyncio.Event()
        self._context: otel_context.Context | None = None
        self._sent: dict[tuple[str, str, str], tuple[str, externaldns.AnnotationPatch]] = {}
        self._ensured = False
        self._conflicts: set[exposures.Conflict] = set()
        self.passes = 0
        self._passed = asyncio.Condition()

    # --- input -------------------------------------------------------------------------

    def notify(self) -> None:
        """The view changed: reconcile soon, in the current message's trace."""
        self._context = otel_context.get_current()
        self._dirty.set()

    async def wait_for_pass(self, *, after: int) -> int:
        """Wait until more than `after` passes completed (tests and the benchmark)."""
        async with self._passed:
            await self._passed.wait_for(lambda: self.passes > after)
            return self.passes

    # --- the loop ----------------------------------------------------------------------

    async def run(self) -> None:
        tick: asyncio.Task[None] = asyncio.create_task(self._ticker.wait())
        try:
            while True:
                dirty = asyncio.create_task(self._dirty.wait())
                done, _ = await asyncio.wait(
                    {tick, dirty}, timeout=self._retry_delay, return_when=asyncio.FIRST_COMPLETED
                )
                if not dirty.done():
                    dirty.cancel()
                repair = tick in done
                if repair:
                    tick = asyncio.create_task(self._ticker.wait())
                if not self.view.synced:
                    self._dirty.clear()  # the handler that completes the view notifies again
                    continue
                trigger = "repair" if repair else ("event" if done else "retry")
                self._dirty.clear()
                started = time.monotonic()
                try:
                    await self.reconcile(repair=repair or not done)
                except Exception:  # a bug must not stop DNS from following the cluster
                    log.exception("dnsupdater: reconcile pass failed; retrying")
                    self._retry_delay = self._next_delay()
                metrics.RECONCILES.labels(trigger=trigger).inc()
                metrics.RECONCILE_SECONDS.observe(time.monotonic() - started)
        finally:
            tick.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await tick

    async def reconcile(self, *, repair: bool = False) -> list[dns_events.DnsChanged]:
        """One pass over every target; failures are logged and retried with backoff."""
        context, self._context = self._context, None
        failed = False
        changed: list[dns_events.DnsChanged] = []
        with self.tracer.start_as_current_span(
            "dnsupdater.reconcile", context=context, attributes={"repair": repair}
        ):
            if repair or not self._ensured:
                failed |= not await self._ensure_all()
            claims = exposures.served_hostnames(
                routes=self.view.routes.values(), exposures=self.view.exposures()
            )
            self._report_conflicts(claims.conflicts)
            served = claims.hostnames
            for target in self.targets:
                try:
                    event = await self._reconcile_zone(target, served=served, repair=repair)
                except errors.TailwireError as exc:
                    failed = True
                    target.applied = None  # read back before the next write
                    self._failure(f"{target.backend.name}:{target.zone.zone}", exc)
                    continue
                if event is not None:
                    changed.append(event)
            if self.annotation_policy is not None:
                failed |= not await self._annotate(self.annotation_policy)
        self._retry_delay = self._next_delay() if failed else None
        async with self._passed:
            self.passes += 1
            self._passed.notify_all()
        return changed

    def _report_conflicts(self, conflicts: tuple[exposures.Conflict, ...]) -> None:
        """Each losing claim is logged once while it lasts, and counted in a gauge."""
        metrics.NAME_CONFLICTS.set(len(conflicts))
        current = set(conflicts)
        for conflict in sorted(current - self._conflicts):
            log.warning("dnsupdater: %s", conflict)
        self._conflicts = current

    def _next_delay(self) -> float:
        if self._retry_delay is None:
            return self._retry_base
        return min(self._retry_delay * 2, self._retry_max)

    def _failure(self, target: str, exc: Exception) -> None:
        metrics.FAILURES.labels(target=target, error=type(exc).__name__).inc()
        log.warning("dnsupdater: %s failed: %s (retrying)", target, exc)

    async def _ensure_all(self) -> bool:
        ok = True
        for ensurer in self.ensurers:
            try:
                await ensurer.ensure()
            except errors.TailwireError as exc:
                ok = False
                self._failure(ensurer.name, exc)
        self._ensured = self._ensured or ok
        return ok

    async def _reconcile_zone(
        self,
        target: ZoneTarget,
        *,
        served: dict[str, tuple[exposures.Exposure, ...]],
        repair: bool,
    ) -> dns_events.DnsChanged | None:
        zone, backend = target.zone, target.backend
        if repair or target.applied is None:
            actual = await backend.read(zone.zone)
            target.applied = records.owned(actual) if backend.owner_markers else actual
            if backend.owner_markers:
                target.foreign = records.foreign_names(actual)
        desired = records.desired_records(
            zone=zone.zone,
            served=served,
            ttl=zone.ttl,
            wildcards=backend.wildcards,
            apex=zone.apex,
            taken=target.foreign,
        )
        refused = sorted(
            name
            for name in served
            if exposures.in_zone(name, zone=zone.zone)
            and (name in target.foreign or (name == zone.zone and not zone.apex))
        )
        if refused:
            log.warning(
                "dnsupdater: %s via %s: not taking %s (someone else's records are there, or "
                "the apex, which the zone does not allow)",
                zone.zone,
                backend.name,
                ", ".join(refused[:10]),
            )
        if backend.owner_markers:
            desired = records.with_owner_markers(desired, ttl=zone.ttl)
        change = records.difference(desired=desired, actual=target.applied)
        if not change:
            return None
        started = self._clock()
        await backend.apply(zone.zone, change=change, desired=desired)
        elapsed = self._clock() - started
        target.applied = desired
        metrics.APPLY_SECONDS.labels(backend=backend.name).observe(elapsed)
        metrics.CHANGES.labels(zone=zone.zone, backend=backend.name).inc()
        metrics.RECORDS.labels(zone=zone.zone, backend=backend.name, op="add").inc(
            len(change.added)
        )
        metrics.RECORDS.labels(zone=zone.zone, backend=backend.name, op="remove").inc(
            len(change.removed)
        )
        if repair:
            metrics.DRIFT.labels(zone=zone.zone, backend=backend.name).inc()
        log.info(
            "dnsupdater: %s via %s: +%d -%d records%s",
            zone.zone,
            backend.name,
            len(change.added),
            len(change.removed),
            " (repair)" if repair else "",
        )
        event = dns_events.DnsChanged(
            zone=zone.zone,
            backend=backend.name,
            added=change.added,
            removed=change.removed,
            duration_ms=round(elapsed * 1000, 3),
        )
        try:
            await self._publish(event)
        except errors.BusError as exc:
            # The change is applied; losing its notice is logged, not retried as a write.
            self._failure("publish", exc)
        return event

    async def _annotate(self, policy: AnnotationPolicy) -> bool:
        exposed = self.view.exposures()
        patches = externaldns.annotation_patches(
            routes=self.view.routes.values(),
            gateways=self.view.gateways.values(),
            exposed=exposed,
            prefix=policy.prefix,
            split_hostnames=policy.split_hostnames,
        )
        versions = {
            ("HTTPRoute", ns, name): r.meta.resource_version
            for (ns, name), r in self.view.routes.items()
        } | {
            ("Gateway", ref.namespace, ref.name): g.meta.resource_version
            for ref, g in self.view.gateways.items()
        }
        # Forget objects that left the view, so the memory follows the cluster.
        for gone in self._sent.keys() - versions.keys():
            del self._sent[gone]
        ok = True
        for patch in patches:
            key = (patch.kind, patch.namespace, patch.name)
            version = versions.get(key, "")
            # Sent already for this version of the object: wait for the watcher's echo.
            if self._sent.get(key) == (version, patch):
                continue
            try:
                await policy.writer.patch_annotations(patch)
            except errors.TailwireError as exc:
                ok = False
                self._failure(f"annotations:{patch.kind}/{patch.namespace}/{patch.name}", exc)
                continue
            self._sent[key] = (version, patch)
            metrics.ANNOTATION_PATCHES.labels(kind=patch.kind).inc()
            log.info("dnsupdater: annotations of %s %s/%s updated", *key)
        return ok
