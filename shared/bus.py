"""The bus: broker factory, the three JetStream streams, publishing, dead letters.

- `make_broker` builds a FastStream NatsBroker with `NatsTelemetryMiddleware` (W3C trace
  context on every message) and the dead-letter middleware of one service.
- `STREAMS` declares the streams of DESIGN.md in one place; `declare_streams` creates or
  updates them, and subscribers attach with `stream(name)` (declare=False) so nothing else
  declares a stream with a different shape. One service owns the streams (`STREAM_OWNER`,
  the renderer): only it declares them, and only its NATS user may create or update them;
  every other service waits on start until the streams it uses (`STREAMS_USED`) exist
  (`connect_and_wait`), so two versions of tailwire never fight over a stream's shape.
- `publish` is the one way to put an event on a stream: it refuses oversized messages, sets
  `Nats-Msg-Id` (duplicates inside the window are dropped by the server) and waits for the
  stream's ack.
- `DeadLetters` turns a message that fails validation into a `DeadLetter` on
  `tailwire.v1.deadletter.<service>` and acknowledges the original: nothing is lost and
  nothing is redelivered forever.

This module knows nothing of any service's handlers.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import nats.errors
import nats.js.errors
import pydantic
from fast_depends.exceptions import ValidationError as DependsValidationError
from faststream import BaseMiddleware, ContextRepo, StreamMessage
from faststream.nats import (
    DeliverPolicy,
    DiscardPolicy,
    JStream,
    NatsBroker,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from faststream.nats.opentelemetry import NatsTelemetryMiddleware
from faststream.nats.security import NatsSecurity, NatsToken, NatsUserPassword
from nats.aio.client import DEFAULT_INBOX_PREFIX, Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from opentelemetry.trace import TracerProvider

from tailwire.shared import errors, settings, subjects
from tailwire.shared.events import base, deadletter

log = logging.getLogger(__name__)

CLUSTER_STREAM = "TAILWIRE_CLUSTER"
NODES_STREAM = "TAILWIRE_NODES"
WORK_STREAM = "TAILWIRE_WORK"

MSG_ID_HEADER = "Nats-Msg-Id"
# Set by nats-server on a message a stream copied in from another stream (`sources`): such a
# message was not published on its subject by anyone.
STREAM_SOURCE_HEADER = "Nats-Stream-Source"
# Per-message TTL (nats-server 2.11+, streams with allow_msg_ttl): the server removes the
# message, and with it the subject, that many seconds after storing it.
TTL_HEADER = "Nats-TTL"
WEEK = 7 * 24 * 3600.0

E = TypeVar("E", bound=base.Event)


@dataclasses.dataclass(frozen=True, kw_only=True)
class StreamSpec:
    """One stream's shape, as DESIGN.md's bus table gives it."""

    name: str
    subjects: tuple[str, ...]
    description: str
    # 1 keeps only the last message per subject (a compacted stream); -1 keeps all.
    max_msgs_per_subject: int
    max_age: float | None = None
    # Accept `Nats-TTL` on messages (tombstones expire); cannot be turned off once on.
    allow_msg_ttl: bool = False


STREAMS: tuple[StreamSpec, ...] = (
    StreamSpec(
        name=CLUSTER_STREAM,
        subjects=subjects.CLUSTER_STREAM_SUBJECTS,
        description="Cluster snapshots and status summaries, last message per subject",
        max_msgs_per_subject=1,
        allow_msg_ttl=True,
    ),
    StreamSpec(
        name=NODES_STREAM,
        subjects=subjects.NODES_STREAM_SUBJECTS,
        description="Node plans, acks and gateway configs, last message per subject",
        max_msgs_per_subject=1,
    ),
    # Limits, not WorkQueue: the renderer, the keyminter and integrations each read the same
    # key and DNS events with their own consumers, which a WorkQueue stream forbids.
    StreamSpec(
        name=WORK_STREAM,
        subjects=subjects.WORK_STREAM_SUBJECTS,
        description="Key work, DNS changes and dead letters, kept for a week",
        max_msgs_per_subject=-1,
        max_age=WEEK,
    ),
)


# The service that declares the streams (creates them, or updates them to this shape).
STREAM_OWNER = subjects.Service.RENDERER

# The streams each service reads or writes: the owner declares them all, the others wait
# until theirs exist (and their NATS users may read only these streams' info).
STREAMS_USED: dict[subjects.Service, tuple[str, ...]] = {
    subjects.Service.WATCHER: (CLUSTER_STREAM,),
    subjects.Service.KEYMINTER: (CLUSTER_STREAM, WORK_STREAM),
    subjects.Service.RENDERER: tuple(spec.name for spec in STREAMS),
    subjects.Service.DNSUPDATER: (CLUSTER_STREAM, WORK_STREAM),
    subjects.Service.NODEAGENT: (NODES_STREAM,),
}


def service_inbox_prefix(service: subjects.Service) -> str:
    """A central service's private reply prefix: JetStream API replies and pushed consumer
    deliveries come there, and only that service's NATS user may subscribe to it
    (`permissions`). A node's token never contains `_`, so no nodeagent's prefix
    (`permissions.inbox_prefix(node)`) equals one of these."""
    return f"_INBOX_tailwire_{service}"


def _default_inbox_prefix(service: subjects.Service | str) -> str | bytes:
    try:
        known = subjects.Service(service)
    except ValueError:
        return DEFAULT_INBOX_PREFIX
    if known is subjects.Service.NODEAGENT:
        return DEFAULT_INBOX_PREFIX  # a nodeagent passes its node's (permissions.inbox_prefix)
    return service_inbox_prefix(known)


def stream_for(subject: str) -> str:
    """The stream that captures a subject (every tailwire subject is in exactly one)."""
    area = subjects.parse(subject).area
    if area in ("cluster", "status"):
        return CLUSTER_STREAM
    if area in ("node", "gateway"):
        return NODES_STREAM
    return WORK_STREAM


def _stream_config(spec: StreamSpec, bus: settings.BusSettings) -> StreamConfig:
    return StreamConfig(
        name=spec.name,
        description=spec.description,
        subjects=list(spec.subjects),
        retention=RetentionPolicy.LIMITS,
        max_msgs_per_subject=spec.max_msgs_per_subject,
        max_age=spec.max_age,
        discard=DiscardPolicy.OLD,
        storage=StorageType.FILE,
        num_replicas=bus.stream_replicas,
        duplicate_window=bus.duplicate_window,
        allow_direct=True,
        allow_msg_ttl=spec.allow_msg_ttl or None,
    )


async def declare_streams(js: JetStreamContext, *, bus: settings.BusSettings) -> None:
    """Create the streams, or bring existing ones to the declared shape."""
    for spec in STREAMS:
        config = _stream_config(spec, bus)
        try:
            await js.add_stream(config=config)
        except nats.js.errors.BadRequestError:
            # Already there with another shape (an older tailwire): update in place.
            await js.update_stream(config=config)


def stream(name: str) -> JStream:
    """Attach a subscriber to a declared stream without re-declaring it."""
    return JStream(name, declare=False)


class ConnectionTrouble:
    """nats-py's error callback: says why the connection fails, which FastStream does only
    for a connection that was up (a wrong password or a refused token at start was silent).
    The first of each reason is logged at once, a repeat at most every `every` seconds."""

    def __init__(
        self, service: str, *, every: float = 30.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.service = service
        self.every = every
        self._clock = clock
        self._logged: dict[str, float] = {}

    async def __call__(self, exc: Exception) -> None:
        reason = str(exc) or type(exc).__name__
        now = self._clock()
        last = self._logged.get(reason)
        if last is None or now - last >= self.every:
            self._logged[reason] = now
            log.warning("%s: NATS connection: %s", self.service, reason)


class GrantedBroker(NatsBroker):
    """A broker whose credentials are granted, not configured: a token the keyminter's auth
    callout answers for. FastStream raises on 'Authorization Violation' from inside nats-py's
    error callback, which ends nats-py's reconnect loop and leaves a connection that neither
    works nor closes. For a granted token the refusal only means "not answered now" (a NATS
    restart while no keyminter leads), so nats-py must keep reconnecting, re-reading the
    token, until the keyminter answers. `ConnectionTrouble` still logs every reason.
    `token_file` is the token it connects with (`TokenFile.follow` keeps the grant fresh)."""

    token_file: TokenFile

    def _log_connection_broken(
        self, error_cb: Callable[[Exception], Awaitable[None]] | None = None
    ) -> Callable[[Exception], Awaitable[None]]:
        async def report(err: Exception) -> None:
            if error_cb is not None:
                await error_cb(err)

        return report


class TokenFile:
    """A connection's token, read from the file at every connect and reconnect (nats-py calls
    `read`): kubelet rotates a projected token in place at 80 % of its life.

    The keyminter's grant expires with the token it was given for, and nats-server then ends
    the connection for good, so `follow` reconnects as soon as the file holds a token other
    than the one the connection was made with: before the old one, and its grant, expire."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.used: str | None = None

    def _current(self) -> str:
        with open(self.path, encoding="utf-8") as handle:
            return handle.read().strip()

    def read(self) -> str:
        self.used = self._current()
        return self.used

    def rotated(self) -> bool:
        """Whether the file holds a new token (an unreadable file is not one)."""
        try:
            return self.used is not None and self._current() != self.used
        except OSError:
            return False

    async def follow(self, connection: Client, *, every: float = 30.0) -> None:
        """Reconnect on `connection` whenever the token rotates; until cancelled."""
        while True:
            await asyncio.sleep(every)
            if self.rotated() and connection.is_connected:
                log.info("NATS token rotated: reconnecting with the new one")
                await connection.force_reconnect()


def tls_context(bus: settings.BusSettings) -> ssl.SSLContext | None:
    """The TLS context for nats-server, or None for a plain nats:// connection.

    TLS when the URL is tls://... or a CA bundle is configured; the server's certificate is
    always verified (against that bundle, else the system's CAs), hostname included."""
    if not bus.nats_url.startswith("tls://") and not bus.nats_tls_ca_file:
        return None
    try:
        return ssl.create_default_context(cafile=bus.nats_tls_ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise errors.ConfigurationError(
            f"TAILWIRE_NATS_TLS_CA_FILE: {bus.nats_tls_ca_file} is not a readable PEM CA "
            f"bundle ({exc})"
        ) from None


def make_broker(
    *,
    service: subjects.Service | str,
    bus: settings.BusSettings,
    tracer_provider: TracerProvider | None = None,
    inbox_prefix: str | None = None,
    closed_cb: Callable[[], Awaitable[None]] | None = None,
) -> NatsBroker:
    """A NatsBroker for one service: telemetry, dead letters, reconnects forever.

    `inbox_prefix`: the reply-subject prefix of this connection; by default a central
    service's own (`service_inbox_prefix`), the only inboxes its NATS user may read. A
    nodeagent confined to its node passes `permissions.inbox_prefix(node)`.
    `closed_cb`: called when the connection is closed for good (see `runtime`).
    """
    tls = tls_context(bus)
    security: NatsSecurity | None = None
    token_file = TokenFile(bus.nats_token_file) if bus.nats_token_file else None
    if token_file is not None:
        security = NatsToken(token_file.read, ssl_context=tls)
    elif bus.nats_user and bus.nats_password:
        security = NatsUserPassword(
            username=bus.nats_user, password=bus.nats_password.get_secret_value(), ssl_context=tls
        )
    elif tls is not None:
        security = NatsSecurity(ssl_context=tls)

    async def reconnected() -> None:
        log.info("%s: NATS connection re-established", service)

    kind = GrantedBroker if token_file is not None else NatsBroker
    broker = kind(
        bus.nats_url,
        name=f"tailwire-{service}",
        security=security,
        user_credentials=bus.nats_creds_file,
        error_cb=ConnectionTrouble(str(service)),
        closed_cb=closed_cb,
        reconnected_cb=reconnected,
        middlewares=(
            NatsTelemetryMiddleware(tracer_provider=tracer_provider),
            DeadLetters(service=str(service)),
        ),
        # A service outlives NATS restarts: keep reconnecting, do not die.
        max_reconnect_attempts=-1,
        reconnect_time_wait=1,
        allow_reconnect=True,
        inbox_prefix=inbox_prefix or _default_inbox_prefix(service),
    )
    if isinstance(broker, GrantedBroker) and token_file is not None:
        broker.token_file = token_file
    return broker


async def connect_and_declare(broker: NatsBroker, *, bus: settings.BusSettings) -> None:
    """Connect and make sure the streams exist before any subscriber attaches."""
    connection = await broker.connect()
    await declare_streams(connection.jetstream(), bus=bus)


async def connect_and_wait(
    broker: NatsBroker,
    *,
    bus: settings.BusSettings,
    streams: tuple[str, ...],
    probes: Mapping[str, str] | None = None,
    poll: float = 0.5,
    remind_every: float = 30.0,
) -> None:
    """Connect, then wait until every one of `streams` exists: a service other than
    `STREAM_OWNER` only reads the streams' info, never declares them (its NATS user may not).

    `probes` maps a stream to a consumer name through which its existence is read instead
    (`CONSUMER.INFO`: "consumer not found" means the stream is there): for a user that may
    not read a stream's info, because `STREAM.INFO` with a `subjects_filter` lists every
    subject of the stream (the nodeagent and TAILWIRE_NODES: every node and group)."""
    connection = await _connect_waiting_for_grant(broker, bus=bus)
    js = connection.jetstream()
    reminded: float | None = None
    while True:
        missing = []
        for name in streams:
            try:
                await _read_stream(js, name, consumer=(probes or {}).get(name))
            except nats.js.errors.NotFoundError:
                missing.append(name)
            except (nats.errors.TimeoutError, nats.js.errors.Error) as exc:
                # JetStream not answering (a cluster without quorum; a user that may not
                # read the info times out too): the same wait, with the reason.
                missing.append(f"{name} ({exc!r})")
        if not missing:
            return
        now = time.monotonic()
        if reminded is None or now - reminded >= remind_every:
            reminded = now
            log.info(
                "streams %s missing; waiting for the %s to declare them",
                ", ".join(missing),
                STREAM_OWNER,
            )
        await asyncio.sleep(poll)


CONSUMER_NOT_FOUND = 10014  # JetStream's error code; a missing stream is 10059


async def _read_stream(js: JetStreamContext, name: str, *, consumer: str | None) -> None:
    """Raise NotFoundError when stream `name` does not exist (see `connect_and_wait`)."""
    if consumer is None:
        await js.stream_info(name)
        return
    try:
        await js.consumer_info(name, consumer)
    except nats.js.errors.NotFoundError as exc:
        if exc.err_code != CONSUMER_NOT_FOUND:
            raise


async def _connect_waiting_for_grant(
    broker: NatsBroker, *, bus: settings.BusSettings, wait: float = 5.0
) -> Client:
    """Connect; with token credentials, wait out refusals. A token is granted by the
    keyminter's auth callout, which may not be answering yet (install, failover): the agent
    retries instead of exiting into a restart backoff. A refused password is a
    configuration error and still ends the process."""
    while True:
        try:
            return await broker.connect()
        except nats.errors.Error as exc:
            if not bus.nats_token_file or "authorization" not in str(exc).lower():
                raise
            await asyncio.sleep(wait)


def content_id(subject: str, body: bytes) -> str:
    """A dedup id from content, for events that have no natural `<uid>:<rv>`."""
    return hashlib.sha256(subject.encode() + b"\0" + body).hexdigest()[:32]


async def publish(
    broker: NatsBroker,
    event: base.Event,
    *,
    subject: str,
    msg_id: str | None = None,
    headers: dict[str, str] | None = None,
    ttl: int | None = None,
) -> None:
    """Publish an event to its stream with a `Nats-Msg-Id`, and wait for the stream's ack.

    `ttl` (seconds) makes the stream drop the message then (tombstones, on TAILWIRE_CLUSTER)."""
    body = event.to_bytes()
    if len(body) > base.MAX_MESSAGE_BYTES:
        raise errors.BusError(
            f"{subject}: message of {len(body)} bytes exceeds {base.MAX_MESSAGE_BYTES}"
        )
    all_headers = {MSG_ID_HEADER: msg_id or content_id(subject, body), **(headers or {})}
    if ttl is not None:
        all_headers[TTL_HEADER] = f"{ttl}s"
    try:
        await broker.publish(
            body,
            subject=subject,
            headers=all_headers,
            stream=stream_for(subject),
            timeout=10.0,
        )
    except (TimeoutError, nats.errors.Error) as exc:
        raise errors.BusError(f"publish to {subject} failed: {exc!r}") from exc


def decode(model: type[E], body: bytes) -> E:
    """Validate a message body against a model; MessageRejected names the bad field."""
    try:
        return model.model_validate_json(body)
    except pydantic.ValidationError as exc:
        raise errors.MessageRejected(describe_validation_error(exc)) from exc


def describe_validation_error(exc: BaseException) -> str:
    """`field.path: message; ...` — the reason a dead letter carries."""
    if isinstance(exc, DependsValidationError) and isinstance(
        exc.original_error, pydantic.ValidationError
    ):
        exc = exc.original_error
    if not isinstance(exc, pydantic.ValidationError):
        return str(exc)
    parts = []
    for error in exc.errors(include_url=False)[:10]:
        location = ".".join(str(p) for p in error["loc"] if p != "body")
        parts.append(f"{location or '<message>'}: {error['msg']}")
    return "; ".join(parts) or str(exc)


# Errors that mean "this message is malformed", not "the handler failed": dead-lettered.
REJECTIONS: tuple[type[BaseException], ...] = (
    pydantic.ValidationError,
    DependsValidationError,
    errors.MessageRejected,
    json.JSONDecodeError,
    UnicodeDecodeError,
)


class DeadLetters:
    """Middleware factory: rejected messages go to `tailwire.v1.deadletter.<service>`."""

    def __init__(self, *, service: str) -> None:
        self.service = service

    def __call__(self, msg: Any, /, *, context: ContextRepo) -> _DeadLetterMiddleware:
        return _DeadLetterMiddleware(msg, context=context, service=self.service)


class _DeadLetterMiddleware(BaseMiddleware):
    def __init__(self, msg: Any, /, *, context: ContextRepo, service: str) -> None:
        super().__init__(msg, context=context)
        self.service = service

    async def consume_scope(
        self,
        call_next: Callable[[StreamMessage[Any]], Awaitable[Any]],
        msg: StreamMessage[Any],
    ) -> Any:
        try:
            return await call_next(msg)
        except REJECTIONS as exc:
            await self._dead_letter(msg, reason=describe_validation_error(exc))
            return None

    async def _dead_letter(self, msg: StreamMessage[Any], *, reason: str) -> None:
        raw: Msg | None = getattr(msg, "raw_message", None)
        subject = raw.subject if raw is not None else ""
        letter = deadletter.DeadLetter.of(
            service=self.service,
            subject=subject,
            reason=reason,
            payload=msg.body if isinstance(msg.body, bytes) else bytes(msg.body),
            headers={k: str(v) for k, v in (msg.headers or {}).items()},
        )
        log.warning("dead-lettered a message from %s: %s", subject, reason)
        broker = self.context.get("broker")
        await publish(
            broker,
            letter,
            subject=subjects.deadletter(self.service),
            msg_id=content_id(subject, letter.payload_b64.encode()),
        )
        # Acknowledge the original: it is kept in the dead-letter subject, not redelivered.
        await msg.ack()


def last_per_subject_policy() -> DeliverPolicy:
    """Deliver policy for views rebuilt from a compacted stream on start."""
    return DeliverPolicy.LAST_PER_SUBJECT
