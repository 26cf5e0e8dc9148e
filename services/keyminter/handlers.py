"""The keyminter's subscribers: key request in -> minting -> `keys.ready`/`failed`/`revoked` out.

Key requests arrive on TAILWIRE_WORK through a durable pull consumer, so a restarted
keyminter resumes where it stopped and unacknowledged requests come back; several are
handled at once (one owner's are serialised by the minter). Only the renderer's NATS user may
publish on `keys.request.>`; a request that reached the stream any other way (copied in by a
stream `sources` entry, which marks it with `Nats-Stream-Source`) or whose body names another
owner than its subject is dead-lettered, never acted on. Every outcome is
a message: a good key -> `keys.ready`; deletion -> `keys.revoked`; a refusal retrying will
not fix (credentials refused, tags not owned, nothing configured) -> `keys.failed` plus a
dead letter, and the request is acknowledged (no retry storm); a transient failure that
outlived the in-process backoff -> `keys.failed` with `retryable` and the request goes back
to JetStream with the delay the backoff or the server asked for. The renewal pass publishes
`keys.ready` for every key it replaced.

This module must not put a key on the bus or in a log: the events have no field for one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from faststream.middlewares import AckPolicy
from faststream.nats import ConsumerConfig, DeliverPolicy, NatsRouter, PullSub
from faststream.nats.annotations import NatsBroker, NatsMessage
from opentelemetry import trace

from tailwire.services.keyminter import checking, domain, metrics, minting
from tailwire.shared import bus, errors, permissions, subjects
from tailwire.shared.events import base, cluster, deadletter, keys

log = logging.getLogger(__name__)

Publish = Callable[[base.Event, str, str], Awaitable[None]]

ACK_WAIT_SECONDS = 600.0


def owner_ref(owner: base.OwnerRef) -> subjects.ObjectRef:
    """The subject form of an owner; MessageRejected names the field if it has none."""
    try:
        kind = subjects.Kind(owner.kind.lower())
    except ValueError:
        raise errors.MessageRejected(
            f"owner.kind: {owner.kind!r} is not a kind tailwire mints keys for"
        ) from None
    return subjects.ObjectRef(kind=kind, namespace=owner.namespace, name=owner.name)


class KeyWork:
    """Runs one request through the minter and turns the outcome into events."""

    def __init__(self, *, minter: minting.Minter, tracer: trace.Tracer | None = None) -> None:
        self.minter = minter
        # app.py sets the service's own tracer once the runtime exists.
        self.tracer = tracer or trace.get_tracer(__name__)

    async def handle(
        self, request: keys.KeyRequest, *, broker: NatsBroker, subject: str, payload: bytes
    ) -> domain.Failure | None:
        """Do the work and publish its event; returns the failure, if any, for ack/nack."""
        ref = owner_ref(request.owner)
        if subject and subject != subjects.keys_request(ref):
            raise errors.MessageRejected(
                f"owner: the body names {ref} but the message came on {subject}"
            )
        started = time.monotonic()
        failure = await self._handle(
            request, broker=broker, ref=ref, subject=subject, payload=payload
        )
        kind = "revoke" if request.revoke else "ensure"
        metrics.REQUEST_SECONDS.labels(operation=kind).observe(time.monotonic() - started)
        outcome = "ok" if failure is None else failure.reason
        metrics.REQUESTS.labels(operation=kind, outcome=outcome).inc()
        return failure

    async def _handle(
        self,
        request: keys.KeyRequest,
        *,
        broker: NatsBroker,
        ref: subjects.ObjectRef,
        subject: str,
        payload: bytes,
    ) -> domain.Failure | None:
        tailnet = self.minter.tailnets.label(request.tailnet)
        operation = "keyminter.revoke" if request.revoke else "keyminter.ensure_key"
        attributes = {"tailwire.owner": str(ref), "tailwire.tailnet": tailnet}
        with self.tracer.start_as_current_span(operation, attributes=attributes) as span:
            try:
                if request.revoke:
                    revoked = await self.minter.revoke(request)
                    span.set_attribute("tailwire.devices_removed", len(revoked.devices_removed))
                    await bus.publish(
                        broker,
                        revoked,
                        subject=subjects.keys_revoked(ref),
                        msg_id=f"{request.owner.uid}:revoked",
                    )
                else:
                    ready = await self.minter.ensure_key(request)
                    span.set_attribute("tailwire.key_id", ready.key_id)
                    await publish_ready(broker, ready)
                return None
            except errors.TailwireError as exc:
                if isinstance(exc, errors.MessageRejected):
                    raise
                failure = domain.classify(exc)
                span.set_attribute("tailwire.failure", failure.reason)
                span.set_status(trace.Status(trace.StatusCode.ERROR, failure.reason))
                if isinstance(exc, errors.AuthenticationFailed):
                    # Rotated credentials are picked up on the next request.
                    self.minter.tailnets.forget(request.tailnet)
        log.warning("key request for %s failed (%s): %s", ref, failure.reason, failure.message)
        await bus.publish(
            broker,
            keys.KeyFailed(
                owner=request.owner,
                tailnet=tailnet,
                reason=failure.reason,
                message=failure.message,
                retryable=failure.retry_after is not None,
            ),
            subject=subjects.keys_failed(ref),
            msg_id=bus.content_id(subject, payload + failure.reason.encode()),
        )
        if failure.retry_after is None:
            letter = deadletter.DeadLetter.of(
                service=str(subjects.Service.KEYMINTER),
                subject=subject,
                reason=f"{failure.reason}: {failure.message}",
                payload=payload,
                headers={},
            )
            await bus.publish(
                broker,
                letter,
                subject=subjects.deadletter(subjects.Service.KEYMINTER),
                msg_id=bus.content_id(subject, payload),
            )
        return failure

    async def renew_due(self, *, broker: NatsBroker) -> int:
        """Renew every key past its renewal point; returns how many were renewed."""
        renewed = 0
        for request in await self.minter.due_for_renewal():
            ref = owner_ref(request.owner)
            failure = await self.handle(
                request,
                broker=broker,
                subject=subjects.keys_request(ref),
                payload=request.to_bytes(),
            )
            renewed += failure is None
            if failure is None:
                metrics.RENEWED.inc()
        return renewed


async def publish_ready(broker: NatsBroker, ready: keys.KeyReady) -> None:
    await bus.publish(
        broker,
        ready,
        subject=subjects.keys_ready(owner_ref(ready.owner)),
        msg_id=f"{ready.owner.uid}:{ready.key_id}",
    )


def refuse_sourced(headers: dict[str, str] | None) -> None:
    """MessageRejected, naming the header, for a request a stream source copied in: the
    renderer publishes key requests on their subject, it never sources them."""
    source = (headers or {}).get(bus.STREAM_SOURCE_HEADER)
    if source is not None:
        raise errors.MessageRejected(
            f"{bus.STREAM_SOURCE_HEADER}: {source!r}: the request was copied into the stream "
            "from another stream, not published by the renderer on its subject"
        )


def build_router(*, work: KeyWork, workers: int = 1) -> NatsRouter:
    """The subscriber of `tailwire.v1.keys.request.>` on a durable pull consumer, handling
    up to `workers` requests at once (one owner's are still serialised by the minter).

    The consumer's name is the one the keyminter's NATS user may use
    (`permissions.KEYMINTER_REQUESTS_CONSUMER`); the pull requests' replies come on the
    keyminter's own inbox prefix (FastStream's default is `_INBOX.`, which its NATS user may
    not read)."""
    router = NatsRouter()
    inbox = bus.service_inbox_prefix(subjects.Service.KEYMINTER)

    @router.subscriber(
        subjects.keys_filter("request"),
        stream=bus.stream(bus.WORK_STREAM),
        durable=permissions.KEYMINTER_REQUESTS_CONSUMER,
        inbox_prefix=f"{inbox}.".encode(),
        # In-process backoff may honour several Retry-Afters (each up to the cap): the
        # server must not redeliver while the first delivery is still being worked on.
        config=ConsumerConfig(ack_wait=ACK_WAIT_SECONDS),
        pull_sub=PullSub(batch_size=1, timeout=1.0),
        max_workers=workers,
        ack_policy=AckPolicy.NACK_ON_ERROR,
    )
    async def on_key_request(
        request: keys.KeyRequest, message: NatsMessage, broker: NatsBroker
    ) -> None:
        refuse_sourced(message.raw_message.headers)
        subject = message.raw_message.subject
        failure = await work.handle(
            request, broker=broker, subject=subject, payload=bytes(message.body)
        )
        if failure is not None and failure.retry_after is not None:
            await message.nack(delay=failure.retry_after)
        else:
            await message.ack()

    return router


def build_tailnet_router(*, checker: checking.TailnetChecker) -> NatsRouter:
    """TailscaleTailnet snapshots (the last of each, then changes) to the checker."""
    router = NatsRouter()

    @router.subscriber(
        subjects.cluster_filter(subjects.Kind.TAILSCALETAILNET),
        stream=bus.stream(bus.CLUSTER_STREAM),
        deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
        ordered_consumer=True,
        title="keyminter.tailnets",
    )
    async def on_tailnet(snapshot: cluster.TailscaleTailnetSnapshot) -> None:
        checker.note(snapshot)

    return router
