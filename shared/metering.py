"""Prometheus metrics every service has, attached to its broker in one place.

- FastStream's Prometheus middleware with the prefix `tailwire_<service>`: messages
  received and handled (by outcome), handling exceptions, handling durations, messages
  published and publish failures. Its `handler`/`destination` labels carry the subject's
  feed (`cluster.pod`, `node.plan`, `keys.request`), never the whole subject, whose object
  and node names would make the label set grow without bound.
- The bus lag of each feed a service reads from JetStream, taken from the metadata of every
  delivered message (no extra call to the server): the consumer's pending count
  (`tailwire_<service>_consumer_pending`) and the age of the message when it is handled
  (`tailwire_<service>_message_lag_seconds`).

Service-specific metrics live in each service (watcher.metrics, dnsupdater.metrics, ...).
Must not: hold logic or label anything with unbounded values (names of objects, uids).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import prometheus_client
from faststream import BaseMiddleware, ContextRepo, StreamMessage
from faststream.nats import NatsBroker
from faststream.nats.prometheus.provider import (
    BatchNatsMetricsSettingsProvider,
    NatsMetricsSettingsProvider,
)
from faststream.prometheus import ConsumeAttrs, PrometheusMiddleware
from faststream.response import PublishCommand
from nats.aio.msg import Msg

from tailwire.shared import errors, subjects

LAG_BUCKETS = (0.005, 0.025, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0, 600.0, 3600.0)

_metrics: dict[str, Any] = {}


def _gauge(name: str, documentation: str, labels: list[str]) -> prometheus_client.Gauge:
    if name not in _metrics:
        _metrics[name] = prometheus_client.Gauge(name, documentation, labels)
    metric: prometheus_client.Gauge = _metrics[name]
    return metric


def _histogram(name: str, documentation: str, labels: list[str]) -> prometheus_client.Histogram:
    if name not in _metrics:
        _metrics[name] = prometheus_client.Histogram(
            name, documentation, labels, buckets=LAG_BUCKETS
        )
    metric: prometheus_client.Histogram = _metrics[name]
    return metric


def prefix(service: subjects.Service | str) -> str:
    return f"tailwire_{service}"


def feed_of(subject: str) -> str:
    """A bounded label for a subject: its area, plus the kind where there is one."""
    try:
        parsed = subjects.parse(subject)
    except errors.SubjectError:
        return "other"
    if parsed.event:
        return f"{parsed.area}.{parsed.event}"
    if parsed.ref is not None:
        return f"{parsed.area}.{parsed.ref.kind}"
    return parsed.area


class _Feeds(NatsMetricsSettingsProvider):
    def get_consume_attrs_from_message(self, msg: StreamMessage[Msg]) -> ConsumeAttrs:
        attrs = super().get_consume_attrs_from_message(msg)
        attrs["destination_name"] = feed_of(attrs["destination_name"])
        return attrs

    def get_publish_destination_name_from_cmd(self, cmd: PublishCommand) -> str:
        return feed_of(cmd.destination)


class _BatchFeeds(BatchNatsMetricsSettingsProvider):
    def get_consume_attrs_from_message(self, msg: StreamMessage[list[Msg]]) -> ConsumeAttrs:
        attrs = super().get_consume_attrs_from_message(msg)
        attrs["destination_name"] = feed_of(attrs["destination_name"])
        return attrs

    def get_publish_destination_name_from_cmd(self, cmd: PublishCommand) -> str:
        return feed_of(cmd.destination)


def _provider(msg: Any) -> _Feeds | _BatchFeeds:
    return _BatchFeeds() if isinstance(msg, list | tuple) else _Feeds()


class Lag:
    """Middleware factory: pending count and message age of every JetStream delivery."""

    def __init__(self, *, service: subjects.Service | str) -> None:
        name = prefix(service)
        self.pending = _gauge(
            f"{name}_consumer_pending",
            "Messages still pending on the JetStream consumer that delivered the last one",
            ["stream", "feed"],
        )
        self.lag = _histogram(
            f"{name}_message_lag_seconds",
            "Age of a JetStream message (since the stream stored it) when handled",
            ["stream", "feed"],
        )

    def __call__(self, msg: Any, /, *, context: ContextRepo) -> _LagMiddleware:
        return _LagMiddleware(msg, context=context, lag=self)


class _LagMiddleware(BaseMiddleware):
    def __init__(self, msg: Any, /, *, context: ContextRepo, lag: Lag) -> None:
        super().__init__(msg, context=context)
        self.meter = lag

    async def consume_scope(
        self,
        call_next: Callable[[StreamMessage[Any]], Awaitable[Any]],
        msg: StreamMessage[Any],
    ) -> Any:
        raw = getattr(msg, "raw_message", None)
        if isinstance(raw, Msg) and raw.reply and raw.reply.startswith("$JS.ACK."):
            metadata = raw.metadata
            labels = (metadata.stream, feed_of(raw.subject))
            self.meter.pending.labels(*labels).set(metadata.num_pending or 0)
            if metadata.timestamp is not None:
                age = time.time() - metadata.timestamp.timestamp()
                self.meter.lag.labels(*labels).observe(max(0.0, age))
        return await call_next(msg)


def instrument(broker: NatsBroker, *, service: subjects.Service | str) -> None:
    """Attach the common metrics to a service's broker (before it starts)."""
    broker.add_middleware(
        PrometheusMiddleware(
            settings_provider_factory=_provider,
            registry=prometheus_client.REGISTRY,
            app_name=f"tailwire-{service}",
            metrics_prefix=prefix(service),
        )
    )
    broker.add_middleware(Lag(service=service))
