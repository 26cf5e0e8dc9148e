"""The watcher's side of the bus: publishing snapshots and reading back the last ones.

Responsible for: publishing one snapshot to `tailwire.v1.cluster.<kind>.<ns>.<name>` with its
dedup id (`<uid>:<resourceVersion>`, `:deleted` for tombstones, which expire after the
bus's `tombstone_ttl` so deleted objects do not keep subjects forever) inside one span per change,
so the message carries that trace's context; and reading the last snapshot of every subject
of a kind from TAILWIRE_CLUSTER, so a restarted watcher compares against what consumers
already have instead of republishing everything. The read goes through the one consumer name
the watcher's NATS user may use (`permissions.WATCHER_RECALL_CONSUMER`), one kind at a time:
it is deleted before (a predecessor killed mid-read may have left it, half read) and after.

Must not: decide whether a snapshot is news (domain does), or retry (the caller does).
"""

from __future__ import annotations

import contextlib
import logging

import nats.errors
import nats.js.errors
import pydantic
from faststream.nats import NatsBroker
from nats.aio.client import Client
from nats.js import api
from opentelemetry import trace

from tailwire.services.watcher import domain
from tailwire.shared import bus, errors, permissions, subjects

log = logging.getLogger(__name__)

FETCH_BATCH = 1000
FETCH_TIMEOUT = 5.0


class Publisher:
    """Publishes snapshots through a service's broker (telemetry and dead letters included)."""

    def __init__(
        self, *, broker: NatsBroker, tracer: trace.Tracer, tombstone_ttl: int | None = None
    ) -> None:
        self.broker = broker
        self.tracer = tracer
        self.tombstone_ttl = tombstone_ttl

    async def publish(self, snapshot: domain.Snapshot) -> None:
        subject = domain.subject_of(snapshot)
        with self.tracer.start_as_current_span(
            f"watcher publish {snapshot.kind}",
            kind=trace.SpanKind.INTERNAL,
            attributes={
                "tailwire.object": str(snapshot.ref),
                "tailwire.resource_version": snapshot.meta.resource_version,
                "tailwire.deleted": snapshot.deleted,
                "messaging.message.id": snapshot.dedup_id,
            },
        ):
            await bus.publish(
                self.broker,
                snapshot,
                subject=subject,
                msg_id=snapshot.dedup_id,
                ttl=self.tombstone_ttl if snapshot.deleted else None,
            )


async def read_last_snapshots(
    connection: Client, *, kind: subjects.Kind
) -> dict[str, domain.Snapshot]:
    """The last message of every `tailwire.v1.cluster.<kind>.>` subject, by subject.

    A message that does not parse as a snapshot is logged and skipped: the watcher then
    publishes that object afresh, which repairs the subject.
    """
    js = connection.jetstream()
    found: dict[str, domain.Snapshot] = {}
    consumer = permissions.WATCHER_RECALL_CONSUMER
    try:
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await js.delete_consumer(bus.CLUSTER_STREAM, consumer)
        await js.add_consumer(
            bus.CLUSTER_STREAM,
            config=api.ConsumerConfig(
                name=consumer,
                filter_subject=subjects.cluster_filter(kind),
                deliver_policy=api.DeliverPolicy.LAST_PER_SUBJECT,
                ack_policy=api.AckPolicy.NONE,
                inactive_threshold=30.0,
                mem_storage=True,
            ),
        )
        subscription = await js.pull_subscribe_bind(consumer=consumer, stream=bus.CLUSTER_STREAM)
    except (nats.errors.Error, TimeoutError) as exc:
        raise errors.BusError(f"reading {subjects.cluster_filter(kind)}: {exc!r}") from exc
    try:
        info = await subscription.consumer_info()
        remaining = info.num_pending or 0
        while remaining > 0:
            try:
                messages = await subscription.fetch(
                    batch=min(FETCH_BATCH, remaining), timeout=FETCH_TIMEOUT
                )
            except (nats.errors.Error, TimeoutError) as exc:
                raise errors.BusError(f"reading {subjects.cluster_filter(kind)}: {exc!r}") from exc
            for message in messages:
                remaining = message.metadata.num_pending
                try:
                    snapshot = domain.SNAPSHOT_ADAPTER.validate_json(message.data)
                except pydantic.ValidationError as exc:
                    log.warning(
                        "ignoring an unreadable snapshot on %s: %s",
                        message.subject,
                        bus.describe_validation_error(exc),
                    )
                    continue
                found[message.subject] = snapshot
    finally:
        try:
            await subscription.unsubscribe()
            await js.delete_consumer(bus.CLUSTER_STREAM, consumer)
        except (nats.errors.Error, TimeoutError):
            pass  # an ephemeral consumer expires by itself
    return found
