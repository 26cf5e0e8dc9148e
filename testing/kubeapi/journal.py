"""The event log: committed changes, the bounded history, and the open subscriptions.

Responsible for: keeping the last ``size`` events (what kube-apiserver's watch
cache keeps) and the compaction point before which a watch cannot start
(410 Gone, with the real message); replaying what came after a version;
fanning each event, bookmark request or disconnect out to the open watches
of its resource; and letting a test wait until watches open or close.

Must not: hold objects or decide what an event is (storage commits them),
or shape wire events (watching does).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections import deque
from collections.abc import Callable
from typing import Any

from . import resources, statuses

JSON = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Event:
    """A committed change; ``obj`` is the new state (the last state for DELETED)."""

    type: str  # ADDED | MODIFIED | DELETED
    resource_version: int
    spec: resources.ResourceSpec
    obj: JSON
    old: JSON | None


@dataclasses.dataclass(frozen=True)
class Bookmark:
    resource_version: int


@dataclasses.dataclass(frozen=True)
class Disconnect:
    """Ends a watch stream as the server does when it restarts or the CRD goes away."""


Signal = Event | Bookmark | Disconnect


class Subscription:
    """One open watch: the signals for its resource, in commit order."""

    def __init__(self, spec: resources.ResourceSpec) -> None:
        self.spec = spec
        self.queue: asyncio.Queue[Signal] = asyncio.Queue()


class Journal:
    def __init__(self, *, size: int) -> None:
        self.size = size
        self._history: deque[Event] = deque()
        self._compacted = 0  # every event after this resourceVersion is still in the history
        self._gone_next: set[str] = set()
        self._subscriptions: set[Subscription] = set()
        self._waiters: list[asyncio.Future[None]] = []

    def append(self, event: Event) -> None:
        self._history.append(event)
        while len(self._history) > self.size:
            self._compacted = self._history.popleft().resource_version
        for subscription in self.subscriptions(event.spec):
            subscription.queue.put_nowait(event)

    def check_start(self, spec: resources.ResourceSpec, since: int | None) -> None:
        """Raise the 410 a watch from ``since`` gets, if it gets one."""
        if spec.key in self._gone_next:
            self._gone_next.discard(spec.key)
            raise statuses.gone(requested=since or 0, oldest=self._compacted)
        if since and since < self._compacted:
            raise statuses.gone(requested=since, oldest=self._compacted)

    def after(self, spec: resources.ResourceSpec, since: int) -> list[Event]:
        return [e for e in self._history if e.resource_version > since and e.spec.key == spec.key]

    def expire(self, *, up_to: int) -> None:
        """Compact: forget every event up to ``up_to``."""
        self._history.clear()
        self._compacted = up_to

    def force_gone(self, spec: resources.ResourceSpec) -> None:
        self._gone_next.add(spec.key)

    # --- subscriptions -------------------------------------------------------------------

    def subscribe(self, spec: resources.ResourceSpec) -> Subscription:
        subscription = Subscription(spec)
        self._subscriptions.add(subscription)
        self._wake_waiters()
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscriptions.discard(subscription)
        self._wake_waiters()

    def subscriptions(self, spec: resources.ResourceSpec | None = None) -> list[Subscription]:
        return [s for s in self._subscriptions if spec is None or s.spec.key == spec.key]

    def signal(
        self, signal: Callable[[], Signal], *, spec: resources.ResourceSpec | None = None
    ) -> int:
        """Queue a bookmark or disconnect to open watches (of one resource); returns how many."""
        targets = self.subscriptions(spec)
        for subscription in targets:
            subscription.queue.put_nowait(signal())
        return len(targets)

    async def changed(self) -> None:
        """Return after the next watch opens or closes."""
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        await waiter

    def _wake_waiters(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
