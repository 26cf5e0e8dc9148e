"""Whether each TailscaleTailnet's control API accepts the credentials of its Secret.

The keyminter is the one service holding those credentials, so it answers the question the
TailscaleTailnet status (and the `tailnets[]` of TailscaleGateways) asks: can tailwire mint
keys there right now? A check lists the tailnet's auth keys (cheap, and the scope minting
needs anyway). Tailnets come from their snapshots on the bus: a new or changed one is checked
at once, all of them every `interval`. A failed tailnet's cached client is dropped before the
next check, so a fixed Secret is picked up without a restart.

What is published (`keys.tailnet`) changes rarely on purpose: an event goes out when the
outcome differs from the last one published, or when that one is older than `heartbeat`, so
`last_connected` stays fresh without a message (and a status write) per check.

Must not: log or publish a credential; decide any status (the renderer does).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import logging
from collections.abc import Awaitable, Callable

from tailwire.services.keyminter import domain, metrics
from tailwire.services.keyminter.adapters import tailnets, timing
from tailwire.shared import errors
from tailwire.shared.events import cluster, keys

log = logging.getLogger(__name__)

CONNECTED = "Connected"

Publish = Callable[[keys.TailnetChecked], Awaitable[None]]


@dataclasses.dataclass(frozen=True, kw_only=True)
class Outcome:
    connected: bool
    reason: str
    message: str


def outcome_of(exc: errors.TailwireError | None) -> Outcome:
    """What a check found: connected, or the reason `keys.failed` would give."""
    if exc is None:
        return Outcome(connected=True, reason=CONNECTED, message="")
    failure = domain.classify(exc)
    return Outcome(connected=False, reason=failure.reason, message=failure.message)


def worth_publishing(
    previous: keys.TailnetChecked | None,
    *,
    outcome: Outcome,
    generation: int | None,
    now: datetime.datetime,
    heartbeat: float,
) -> bool:
    """A new outcome, a new generation, or the last event is older than the heartbeat."""
    if previous is None:
        return True
    same = (previous.connected, previous.reason, previous.message, previous.generation) == (
        outcome.connected,
        outcome.reason,
        outcome.message,
        generation,
    )
    return not same or (now - previous.checked_at).total_seconds() >= heartbeat


class TailnetChecker:
    """Checks the tailnets it was told about; one instance per keyminter."""

    def __init__(
        self,
        *,
        directory: tailnets.Tailnets,
        clock: timing.Clock,
        publish: Publish,
        interval: float,
        heartbeat: float,
    ) -> None:
        self._directory = directory
        self._clock = clock
        self._publish = publish
        self.interval = interval
        self.heartbeat = heartbeat
        # name -> (uid, generation) of the snapshot last noted: what a check is about.
        self._versions: dict[str, tuple[str, int | None]] = {}
        self._published: dict[str, keys.TailnetChecked] = {}
        self._last_connected: dict[str, datetime.datetime] = {}
        self._due: set[str] = set()
        self._wake = asyncio.Event()

    @property
    def known(self) -> tuple[str, ...]:
        return tuple(sorted(self._versions))

    def note(self, snapshot: cluster.TailscaleTailnetSnapshot) -> None:
        """A TailscaleTailnet snapshot from the bus: a new or changed one is checked at once."""
        name = snapshot.meta.name
        if snapshot.deleted:
            self._versions.pop(name, None)
            self._published.pop(name, None)
            self._last_connected.pop(name, None)
            self._due.discard(name)
            self._directory.forget(name)
            return
        version = (snapshot.meta.uid, snapshot.meta.generation)
        if self._versions.get(name) == version:
            return
        self._versions[name] = version
        self._directory.forget(name)  # the spec (API URL, Secret name) may have changed
        self._due.add(name)
        self._wake.set()

    async def check(self, name: str) -> keys.TailnetChecked | None:
        """Check one tailnet; the event published, or None when nothing new was found."""
        version = self._versions.get(name)
        if version is None:
            return None  # not (or no longer) a TailscaleTailnet this keyminter knows
        uid, generation = version
        failure: errors.TailwireError | None = None
        try:
            backend = await self._directory.backend(name)
            await backend.list_keys()
        except errors.TailwireError as exc:
            failure = exc
        if self._versions.get(name) != version:
            return None  # deleted or changed meanwhile: that snapshot's own check reports
        outcome = outcome_of(failure)
        metrics.TAILNET_CHECKS.labels(outcome=outcome.reason).inc()
        now = self._clock.now()
        if outcome.connected:
            self._last_connected[name] = now
        else:
            self._directory.forget(name)  # re-read the resource and Secret next time
        previous = self._published.get(name)
        if not worth_publishing(
            previous, outcome=outcome, generation=generation, now=now, heartbeat=self.heartbeat
        ):
            return None
        if previous is None or previous.connected != outcome.connected:
            level = logging.INFO if outcome.connected else logging.WARNING
            log.log(level, "tailnet %s: %s %s", name, outcome.reason, outcome.message)
        event = keys.TailnetChecked(
            tailnet=name,
            uid=uid,
            generation=generation,
            connected=outcome.connected,
            reason=outcome.reason,
            message=outcome.message,
            checked_at=now,
            last_connected=self._last_connected.get(name),
        )
        await self._publish(event)
        self._published[name] = event
        return event

    async def check_all(self, names: tuple[str, ...] | None = None) -> None:
        names = self.known if names is None else names
        await asyncio.gather(*(self._guarded(name) for name in names))

    async def _guarded(self, name: str) -> None:
        # One tailnet's trouble must not end the loop or the other checks.
        try:
            await self.check(name)
        except errors.BusError as exc:
            log.warning("tailnet %s: publishing the check failed; next pass retries: %s", name, exc)
        except Exception as exc:  # noqa: BLE001
            log.warning("tailnet %s: check failed: %s", name, type(exc).__name__)

    async def run(self) -> None:
        """Check what is due at once, everything every `interval`."""
        while True:
            woken = True
            try:
                async with asyncio.timeout(self.interval):
                    await self._wake.wait()
            except TimeoutError:
                woken = False
            self._wake.clear()
            due, self._due = tuple(sorted(self._due)), set()
            await self.check_all(due if woken else None)
