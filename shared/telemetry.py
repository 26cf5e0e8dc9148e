"""Tracing and logging for every service: one trace per change, logs that carry its id.

- `setup_tracing` builds a TracerProvider whose exporter comes from the standard `OTEL_*`
  variables (OTLP/HTTP), the console, an exporter a test passes (in-memory), or nothing.
- `configure_logging` installs one handler whose lines carry `trace_id`/`span_id` of the
  current span and pass through `redact`, so an authkey, a bearer token or an OAuth secret
  never reaches a log line even when a library logs a request body or an exception.
- `inject`/`extract` carry W3C trace context in NATS headers for code that publishes with
  nats-py directly (FastStream's NatsTelemetryMiddleware does it for the brokers).

This module must not decide what to trace; services open their own spans.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)

REDACTED = "[REDACTED]"

# Patterns of secrets that may show up in text we did not write (library logs, exceptions).
_SECRET_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Tailscale authkeys, API keys, OAuth client secrets: tskey-auth-..., tskey-api-..., ...
    (re.compile(r"tskey-[A-Za-z0-9_-]+"), REDACTED),
    # Headscale pre-auth keys are 48 hex chars; API keys are `<prefix>.<secret>`.
    (re.compile(r"\b[0-9a-f]{48}\b"), REDACTED),
    (re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"), r"\1" + REDACTED),
    (
        re.compile(r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?)(?!bearer)[^\s\"',]+"),
        r"\1" + REDACTED,
    ),
    (
        re.compile(
            r"(?i)([\"']?(?:client_secret|access_token|refresh_token|password|tsig[_-]?secret|"
            r"secret|authkey|auth_key|api_key|key)[\"']?\s*[:=]\s*[\"']?)([^\s\"'&,}]+)"
        ),
        r"\1" + REDACTED,
    ),
)


def redact(text: str) -> str:
    """Replace anything that looks like a credential with [REDACTED]."""
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    """Redacts a record's rendered message (and drops args) before any formatter sees it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message or record.args:
            record.msg = cleaned
            record.args = None
        return True


class _TraceFormatter(logging.Formatter):
    """Adds trace ids; emits JSON lines or plain text; redacts the final text again
    (tracebacks are rendered here, after filters ran)."""

    def __init__(self, *, service: str, as_json: bool) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")
        self.service = service
        self.as_json = as_json

    def format(self, record: logging.LogRecord) -> str:
        span = trace.get_current_span().get_span_context()
        trace_id = format(span.trace_id, "032x") if span.is_valid else None
        span_id = format(span.span_id, "016x") if span.is_valid else None
        if self.as_json:
            entry: dict[str, Any] = {
                "ts": self.formatTime(record),
                "level": record.levelname,
                "service": self.service,
                "logger": record.name,
                "msg": record.getMessage(),
                "trace_id": trace_id,
                "span_id": span_id,
            }
            if record.exc_info:
                entry["exc"] = self.formatException(record.exc_info)
            text = json.dumps(entry, default=str)
        else:
            text = super().format(record)
            if trace_id:
                text += f" trace_id={trace_id} span_id={span_id}"
        return redact(text)


def configure_logging(*, service: str, level: str = "INFO", as_json: bool = True) -> None:
    """Route all logging through one redacting, trace-aware handler on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(_TraceFormatter(service=service, as_json=as_json))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    install_redaction()


def install_redaction() -> None:
    """Add the redacting filter to every existing handler (pytest's caplog included)."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())


def setup_tracing(
    *,
    service_name: str,
    exporter: str | SpanExporter = "otlp",
    set_global: bool = True,
) -> TracerProvider:
    """A TracerProvider for `service_name` with the chosen exporter.

    `exporter` is "auto" (OTLP if an OTLP endpoint variable is set, else nothing), "otlp"
    (endpoint and headers from OTEL_EXPORTER_OTLP_* variables),
    "console", "none", or a SpanExporter instance (tests pass an InMemorySpanExporter,
    which is exported synchronously so assertions need no waiting).
    """
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    if exporter == "auto":
        # Exporting to a collector nobody configured only produces retries and warnings.
        endpoint_set = any(
            os.environ.get(name)
            for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        )
        exporter = "otlp" if endpoint_set else "none"
    if isinstance(exporter, SpanExporter):
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    elif exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter,
        )

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    elif exporter == "console":
        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter(out=sys.stderr)))
    elif exporter != "none":
        raise ValueError(f"traces_exporter: unknown exporter {exporter!r}")
    if set_global:
        trace.set_tracer_provider(provider)
    return provider


def inject(headers: dict[str, str]) -> dict[str, str]:
    """Write the current trace context (`traceparent`, `tracestate`) into NATS headers."""
    propagate.inject(headers)
    return headers


def extract(headers: Mapping[str, str] | None) -> otel_context.Context:
    """The trace context carried by a message's headers (empty context if none)."""
    return propagate.extract(dict(headers or {}))


def trace_id_of(headers: Mapping[str, str] | None) -> str | None:
    """The 32-hex trace id a message carries, if any."""
    span_context = trace.get_current_span(extract(headers)).get_span_context()
    return format(span_context.trace_id, "032x") if span_context.is_valid else None
