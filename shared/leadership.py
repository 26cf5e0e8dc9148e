"""Leader election on a Kubernetes Lease (`coordination.k8s.io/v1`), the way client-go does it.

Replicas of one service share a Lease named after the service. A candidate takes the Lease when
nobody holds it, when its holder released it, or when its record has not changed for
`lease_seconds` as measured on the candidate's own clock (no trust in other hosts' clocks,
only in the time the candidate itself saw the record last change). The leader renews every
`retry_seconds`; if it cannot renew for `renew_deadline` seconds, or finds another holder, it
has lost the Lease and says so through `on_lost` (the runtime then stops the process so it
comes back as a standby). On a clean stop the leader releases the Lease, so a standby takes
over at once instead of after `lease_seconds`. Writes use the Lease's resourceVersion, so two
candidates never both win.

Responsible for: the Lease protocol and its metrics. Must not: know what a service does while
it leads (shared.runtime gates the service's start on `acquired`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import prometheus_client
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from tailwire.shared import cancelling, errors

log = logging.getLogger(__name__)

Clock = Callable[[], datetime.datetime]
Sleep = Callable[[float], Awaitable[None]]
ApiClientFactory = Callable[[], Awaitable[client.ApiClient]]

IS_LEADER = prometheus_client.Gauge(
    "tailwire_leadership_is_leader",
    "1 while this process holds its service's Lease, else 0",
    ["lease"],
)
TRANSITIONS = prometheus_client.Counter(
    "tailwire_leadership_transitions",
    "Times this process acquired (acquired) or lost/released (lost, released) its Lease",
    ["lease", "event"],
)


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Timing:
    """client-go's three durations (seconds): lease > renew deadline > retry period."""

    lease_seconds: float = 10.0
    renew_deadline: float = 7.0
    retry_seconds: float = 2.0

    def __post_init__(self) -> None:
        if not self.lease_seconds > self.renew_deadline > self.retry_seconds > 0:
            raise errors.ConfigurationError(
                "leader election: lease duration > renew deadline > retry period > 0 is "
                f"required (got {self.lease_seconds}, {self.renew_deadline}, "
                f"{self.retry_seconds})"
            )


@dataclasses.dataclass(frozen=True, kw_only=True)
class Record:
    """What a Lease says about its holder (the comparable part of its spec)."""

    holder: str
    lease_seconds: int
    acquired_at: str | None
    renewed_at: str | None
    transitions: int


def _micro_time(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _as_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime.datetime):
        return _micro_time(value)
    return str(value)


def record_of(lease: client.V1Lease) -> Record:
    spec = lease.spec or client.V1LeaseSpec()
    return Record(
        holder=spec.holder_identity or "",
        lease_seconds=int(spec.lease_duration_seconds or 0),
        acquired_at=_as_text(spec.acquire_time),
        renewed_at=_as_text(spec.renew_time),
        transitions=int(spec.lease_transitions or 0),
    )


class Elector:
    """One candidate for one Lease."""

    def __init__(
        self,
        *,
        name: str,
        namespace: str,
        identity: str,
        api_client_factory: ApiClientFactory,
        timing: Timing | None = None,
        clock: Clock = utcnow,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if not identity:
            raise errors.ConfigurationError("leader election: the identity must not be empty")
        self.name = name
        self.namespace = namespace
        self.identity = identity
        self.timing = timing or Timing()
        self.clock = clock
        self.sleep = sleep
        self.acquired = asyncio.Event()
        self.lost = asyncio.Event()
        self.on_lost: Callable[[], None] | None = None
        self._factory = api_client_factory
        self._api_client: client.ApiClient | None = None
        self._observed: Record | None = None
        self._observed_at: datetime.datetime | None = None
        self.renewed_at: datetime.datetime | None = None
        self._task: asyncio.Task[None] | None = None
        self._complained = False
        IS_LEADER.labels(self.name).set(0)  # a standby reports 0, not nothing

    @property
    def leading(self) -> bool:
        return self.acquired.is_set() and not self.lost.is_set()

    # --- one attempt ---------------------------------------------------------------------

    async def _api(self) -> client.CoordinationV1Api:
        if self._api_client is None:
            self._api_client = await self._factory()
        return client.CoordinationV1Api(self._api_client)

    def _spec(self, *, now: datetime.datetime, old: Record | None) -> dict[str, Any]:
        keeps = old is not None and old.holder == self.identity
        transitions = old.transitions if old is not None else 0
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": max(1, round(self.timing.lease_seconds)),
            "acquireTime": old.acquired_at if keeps and old is not None else _micro_time(now),
            "renewTime": _micro_time(now),
            "leaseTransitions": transitions if keeps or old is None else transitions + 1,
        }

    async def try_acquire_or_renew(self) -> bool:
        """One round: True when this candidate holds the Lease afterwards."""
        try:
            return await self._attempt()
        except (ApiException, aiohttp.ClientError, OSError, TimeoutError) as exc:
            reason = (
                f"HTTP {exc.status} {exc.reason}" if isinstance(exc, ApiException) else repr(exc)
            )
            self._complain(f"Lease {self.namespace}/{self.name}: {reason}")
            return False
        except errors.TailwireError as exc:
            self._complain(f"Lease {self.namespace}/{self.name}: {exc}")
            return False

    def _complain(self, message: str) -> None:
        # Once per outage: a standby retries every few seconds.
        if not self._complained:
            log.warning("leader election: %s; retrying", message)
            self._complained = True

    async def _attempt(self) -> bool:
        api = await self._api()
        now = self.clock()
        try:
            lease = await api.read_namespaced_lease(self.name, self.namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise
            body = self._lease(spec=self._spec(now=now, old=None))
            try:
                await api.create_namespaced_lease(self.namespace, body)  # type: ignore[arg-type]
            except ApiException as conflict:
                if conflict.status == 409:
                    return False  # another candidate created it first
                raise
            return self._won(now)
        record = record_of(lease)
        if record != self._observed:
            self._observed, self._observed_at = record, now
        held_by_other = record.holder not in ("", self.identity)
        seen = self._observed_at or now
        if held_by_other and seen + datetime.timedelta(seconds=record.lease_seconds) > now:
            return False
        body = self._lease(
            spec=self._spec(now=now, old=record), resource_version=lease.metadata.resource_version
        )
        try:
            await api.replace_namespaced_lease(self.name, self.namespace, body)  # type: ignore[arg-type]
        except ApiException as exc:
            if exc.status == 409:
                return False  # someone wrote it since we read it
            raise
        return self._won(now)

    def _lease(
        self, *, spec: dict[str, Any], resource_version: str | None = None
    ) -> dict[str, Any]:
        """The Lease object to write; with a resourceVersion, a write that loses a race fails."""
        metadata: dict[str, Any] = {"name": self.name, "namespace": self.namespace}
        if resource_version is not None:
            metadata["resourceVersion"] = resource_version
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": metadata,
            "spec": spec,
        }

    def _won(self, now: datetime.datetime) -> bool:
        self.renewed_at = now
        self._observed, self._observed_at = None, now
        self._complained = False
        return True

    # --- the loop ------------------------------------------------------------------------

    async def run(self) -> None:
        """Campaign until elected, then renew until the Lease is lost (returns then)."""
        while not self.acquired.is_set():
            if await self.try_acquire_or_renew():
                self.acquired.set()
                IS_LEADER.labels(self.name).set(1)
                TRANSITIONS.labels(self.name, "acquired").inc()
                log.info(
                    "leader election: %s leads %s/%s", self.identity, self.namespace, self.name
                )
                break
            await self.sleep(self.timing.retry_seconds)
        while True:
            await self.sleep(self.timing.retry_seconds)
            if await self.try_acquire_or_renew():
                continue
            renewed = self.renewed_at or self.clock()
            lost_to_other = self._observed is not None and self._observed.holder not in (
                "",
                self.identity,
            )
            deadline = datetime.timedelta(seconds=self.timing.renew_deadline)
            if lost_to_other or self.clock() - renewed >= deadline:
                self._lose(
                    f"held by {self._observed.holder}"
                    if lost_to_other and self._observed is not None
                    else f"not renewed for {self.timing.renew_deadline:g} s"
                )
                return

    def _lose(self, why: str) -> None:
        log.error(
            "leader election: %s lost %s/%s (%s); stopping",
            self.identity,
            self.namespace,
            self.name,
            why,
        )
        self.lost.set()
        IS_LEADER.labels(self.name).set(0)
        TRANSITIONS.labels(self.name, "lost").inc()
        if self.on_lost is not None:
            self.on_lost()

    async def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name=f"lease {self.name}")

    async def stop(self) -> None:
        """Stop campaigning; a leader releases the Lease so a standby takes over at once."""
        if self._task is not None:
            await cancelling.cancel_and_wait([self._task])
            self._task = None
        if self.leading:
            await self.release()
        if self._api_client is not None:
            await self._api_client.close()
            self._api_client = None

    async def release(self) -> None:
        try:
            api = await self._api()
            lease = await api.read_namespaced_lease(self.name, self.namespace)
            if record_of(lease).holder != self.identity:
                return
            now = _micro_time(self.clock())
            body = self._lease(
                spec={
                    "holderIdentity": "",
                    "leaseDurationSeconds": 1,
                    "acquireTime": now,
                    "renewTime": now,
                    "leaseTransitions": record_of(lease).transitions,
                },
                resource_version=lease.metadata.resource_version,
            )
            await api.replace_namespaced_lease(self.name, self.namespace, body)  # type: ignore[arg-type]
            log.info("leader election: %s released %s/%s", self.identity, self.namespace, self.name)
        except (ApiException, aiohttp.ClientError, OSError, TimeoutError) as exc:
            log.warning("leader election: releasing %s failed (%r); it expires", self.name, exc)
        finally:
            self.lost.set()
            IS_LEADER.labels(self.name).set(0)
            TRANSITIONS.labels(self.name, "released").inc()
