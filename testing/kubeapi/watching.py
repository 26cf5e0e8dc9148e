"""One watch stream, event by event, as kube-apiserver's watch cache serves it.

Responsible for: turning a subscription into the wire events
(``{"type": ..., "object": ...}``): the initial ADDED burst or the replay
after a ``resourceVersion``; the ERROR event with a 410 ``Expired`` Status
when that version is too old (HTTP 200, the error inside the stream, as the
real server does); selector transitions (an object that stops matching is
sent as DELETED, one that starts matching as ADDED); BOOKMARK events when the
client allowed them, periodically and on request, and the one closing the
initial burst of a ``sendInitialEvents`` watch; ending the stream at
``timeoutSeconds`` or when told to disconnect.

Must not: write to storage, or decide HTTP status codes and headers.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
from collections.abc import AsyncGenerator
from typing import Any

from . import journal, resources, selectors, statuses, storage

JSON = dict[str, Any]


@dataclasses.dataclass(frozen=True, kw_only=True)
class WatchRequest:
    spec: resources.ResourceSpec
    namespace: str | None = None
    name: str | None = None
    labels: selectors.LabelSelector = dataclasses.field(default_factory=selectors.LabelSelector)
    fields: selectors.FieldSelector = dataclasses.field(default_factory=selectors.FieldSelector)
    since: int | None = None
    bookmarks: bool = False
    initial_events_end: bool = False  # sendInitialEvents: mark the end of the initial burst
    timeout: float | None = None

    def matches(self, obj: JSON | None) -> bool:
        if obj is None:
            return False
        meta = obj.get("metadata", {})
        return (
            (self.namespace is None or meta.get("namespace") == self.namespace)
            and (self.name is None or meta.get("name") == self.name)
            and self.labels.matches(obj)
            and self.fields.matches(obj)
        )


def translate(event: journal.Event, request: WatchRequest) -> JSON | None:
    """The wire event this watcher sees for a committed change, if any."""
    if event.type == "DELETED":
        return {"type": "DELETED", "object": event.obj} if request.matches(event.obj) else None
    now, before = request.matches(event.obj), request.matches(event.old)
    if now:
        return {"type": "MODIFIED" if before else "ADDED", "object": event.obj}
    if before and event.old is not None:
        # Left the selection: the watch cache sends the previous state under the new version.
        gone = copy.deepcopy(event.old)
        gone["metadata"]["resourceVersion"] = str(event.resource_version)
        return {"type": "DELETED", "object": gone}
    return None


def bookmark(
    spec: resources.ResourceSpec, resource_version: int, *, initial_events_end: bool = False
) -> JSON:
    metadata: JSON = {"resourceVersion": str(resource_version)}
    if initial_events_end:
        metadata["annotations"] = {"k8s.io/initial-events-end": "true"}
    return {
        "type": "BOOKMARK",
        "object": {"kind": spec.kind, "apiVersion": spec.api_version, "metadata": metadata},
    }


async def stream(
    store: storage.Store,
    request: WatchRequest,
    *,
    bookmark_interval: float,
) -> AsyncGenerator[JSON, None]:
    try:
        initial, subscription = store.subscribe(request.spec, since=request.since)
    except statuses.StatusError as e:
        yield {"type": "ERROR", "object": e.status}
        return
    try:
        for event in initial:
            if (wire := translate(event, request)) is not None:
                yield wire
        if request.initial_events_end:
            yield bookmark(request.spec, store.resource_version, initial_events_end=True)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + request.timeout if request.timeout else None
        next_bookmark = loop.time() + bookmark_interval if request.bookmarks else None
        while True:
            wake_at = min((t for t in (deadline, next_bookmark) if t is not None), default=None)
            try:
                async with asyncio.timeout_at(wake_at):
                    signal = await subscription.queue.get()
            except TimeoutError:
                if deadline is not None and loop.time() >= deadline:
                    return  # timeoutSeconds: the server ends the response cleanly
                # The queue is empty, so every event up to now has been sent: safe to bookmark.
                yield bookmark(request.spec, store.resource_version)
                next_bookmark = loop.time() + bookmark_interval
                continue
            match signal:
                case journal.Event():
                    if (wire := translate(signal, request)) is not None:
                        yield wire
                case journal.Bookmark() if request.bookmarks:
                    yield bookmark(request.spec, signal.resource_version)
                case journal.Disconnect():
                    return
    finally:
        store.journal.unsubscribe(subscription)
