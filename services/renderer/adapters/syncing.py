"""Keeps the Kubernetes API in step with the latest desired objects, retrying until it is.

The handlers hand over the whole desired set (manifests, prune scopes, status documents,
finalizer lists) whenever it changes; one task applies what differs from what it last
applied, prunes managed objects no longer desired, and writes statuses and finalizers. While
the API is unreachable it logs that once per outage and retries with capped exponential
backoff; nothing blocks the bus side (plans keep flowing). Every `resync_interval` it applies
everything again, so drift made behind its back is corrected.
Must not: compute desired state, or retry permanent errors in a tight loop.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from tailwire.services.renderer import domain, metrics
from tailwire.services.renderer.adapters import kube
from tailwire.shared import errors

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]
Key = tuple[str, str, str, str]


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


@dataclasses.dataclass(frozen=True, kw_only=True)
class Desired:
    manifests: tuple[domain.Manifest, ...] = ()
    prune: tuple[domain.PruneScope, ...] = ()
    # object reference manifest (apiVersion/kind/metadata.name) -> status document
    statuses: tuple[tuple[domain.Manifest, dict[str, Any]], ...] = ()
    # object reference manifest -> the complete finalizer list it should have
    finalizers: tuple[tuple[domain.Manifest, tuple[str, ...]], ...] = ()


class ManifestSync:
    def __init__(
        self,
        *,
        writer: kube.KubeWriter,
        sleep: Sleep = asyncio.sleep,
        min_backoff: float = 1.0,
        max_backoff: float = 30.0,
        resync_interval: float = 600.0,
    ) -> None:
        self.writer = writer
        self._sleep = sleep
        self._min, self._max = min_backoff, max_backoff
        self._resync = resync_interval
        self._desired = Desired()
        self._changed = asyncio.Event()
        self._applied: dict[str, str] = {}  # what we last wrote successfully, by digest
        self._unreachable = False
        self.synced = asyncio.Event()  # set after a pass that wrote everything

    def update(self, desired: Desired) -> None:
        self._desired = desired
        self.synced.clear()
        self._changed.set()

    async def run(self) -> None:
        backoff = self._min
        while True:
            try:
                async with asyncio.timeout(self._resync):
                    await self._changed.wait()
            except TimeoutError:
                # Level-triggered: now and then apply everything again, so objects someone
                # edited or deleted behind tailwire's back converge without a desired change.
                self._applied.clear()
            self._changed.clear()
            started = time.monotonic()
            try:
                await self._sync_once(self._desired)
            except errors.TransientBackendError as exc:
                metrics.SYNC_PASSES.labels(outcome="unreachable").inc()
                if not self._unreachable:
                    log.warning("Kubernetes API unreachable, will retry: %s", exc)
                self._unreachable = True
                self._changed.set()
                await self._sleep(backoff)
                backoff = min(backoff * 2, self._max)
                continue
            metrics.SYNC_PASSES.labels(outcome="ok").inc()
            metrics.SYNC_SECONDS.observe(time.monotonic() - started)
            if self._unreachable:
                log.info("Kubernetes API reachable again; desired objects applied")
            self._unreachable = False
            backoff = self._min
            if not self._changed.is_set():
                self.synced.set()

    async def _write(
        self, tag: str, value: Any, write: Callable[..., Awaitable[None]], *args: Any
    ) -> None:
        digest = _digest(value)
        if self._applied.get(tag) == digest:
            return
        try:
            await write(*args)
        except errors.TransientBackendError:
            raise
        except errors.BackendError as exc:
            # Permanent for this object (a 4xx): logged, not retried until it changes.
            log.error("%s: %s", tag, exc)
        self._applied[tag] = digest

    async def _prune(self, found: Key) -> None:
        log.info("pruning %s/%s %s", found[1], found[2], found[3])
        try:
            await self.writer.delete(found)
        except errors.TransientBackendError:
            raise
        except errors.BackendError as exc:
            # Refused for this object (403, a webhook): logged; the rest of the pass goes on
            # and the next resync tries again. The loop must not die of one object.
            log.error("pruning %s/%s %s failed: %s", found[1], found[2], found[3], exc)
            return
        self._applied.pop(f"apply:{found}", None)

    async def _sync_once(self, desired: Desired) -> None:
        wanted: set[Key] = set()
        for manifest in desired.manifests:
            key = domain.object_key(manifest)
            wanted.add(key)
            await self._write(f"apply:{key}", manifest, self.writer.apply, manifest)
        for scope in desired.prune:
            try:
                managed = await self.writer.list_managed(scope)
            except errors.TransientBackendError:
                raise
            except errors.BackendError as exc:
                # The kind is not installed (404) or not listable (403): nothing of it to
                # prune; one missing CRD must not stop the whole sync loop.
                log.warning("not pruning %s: %s", scope.kind, exc)
                continue
            for found in managed:
                if found not in wanted:
                    await self._prune(found)
        for ref, status in desired.statuses:
            key = domain.object_key(ref)
            await self._write(f"status:{key}", status, self.writer.patch_status, ref, status)
        for ref, finalizers in desired.finalizers:
            key = domain.object_key(ref)
            await self._write(
                f"finalizers:{key}", finalizers, self.writer.set_finalizers, ref, list(finalizers)
            )
