"""A tiny OTLP/HTTP trace receiver, so tests and the demo can read back what every process
exported.

Each service process started by `tailwire.testing.system` gets
`OTEL_EXPORTER_OTLP_ENDPOINT=<receiver.url>` and `TAILWIRE_TRACES_EXPORTER=otlp`; its
BatchSpanProcessor then POSTs protobuf `ExportTraceServiceRequest`s to `/v1/traces` here
(gzip or deflate bodies accepted). Spans are kept in memory as `ReceivedSpan`s, in arrival
order.

    async with otlp.serve() as receiver:
        ...  # processes export to receiver.url
        spans = await receiver.wait_for_trace(trace_id, services={"watcher", "renderer"})
        console.print(otlp.span_tree(spans))

Must not: listen on anything but 127.0.0.1, forward spans anywhere, or be imported by services.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gzip
import zlib
from collections.abc import AsyncIterator, Callable, Iterable, Mapping

from aiohttp import web
from google.protobuf.message import DecodeError  # type: ignore[import-untyped]
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from rich.tree import Tree

AttributeValue = str | bool | int | float


@dataclasses.dataclass(frozen=True, kw_only=True)
class ReceivedSpan:
    """One exported span, with ids as lowercase hex (trace 32 digits, span 16)."""

    service: str  # the resource's service.name, e.g. "tailwire-renderer"
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str | None
    start_ns: int
    end_ns: int
    attributes: Mapping[str, AttributeValue]

    @property
    def duration_ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6

    @property
    def short_service(self) -> str:
        """`tailwire-nodeagent` -> `nodeagent`."""
        return self.service.removeprefix("tailwire-")


def _value(value: common_pb2.AnyValue) -> AttributeValue:
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "int_value":
        return value.int_value
    if kind == "double_value":
        return value.double_value
    return str(getattr(value, kind)) if kind else ""


def _attributes(items: Iterable[common_pb2.KeyValue]) -> dict[str, AttributeValue]:
    return {item.key: _value(item.value) for item in items}


def decode(body: bytes) -> list[ReceivedSpan]:
    """The spans of one ExportTraceServiceRequest."""
    request = trace_service_pb2.ExportTraceServiceRequest()
    request.ParseFromString(body)
    spans = []
    for resource_spans in request.resource_spans:
        service = str(_attributes(resource_spans.resource.attributes).get("service.name", "?"))
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(
                    ReceivedSpan(
                        service=service,
                        name=span.name,
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex() or None,
                        start_ns=span.start_time_unix_nano,
                        end_ns=span.end_time_unix_nano,
                        attributes=_attributes(span.attributes),
                    )
                )
    return spans


class OtlpReceiver:
    """The running receiver: its URL and what it received."""

    def __init__(self) -> None:
        self.url = ""
        self._spans: list[ReceivedSpan] = []
        self._changed = asyncio.Event()

    @property
    def spans(self) -> list[ReceivedSpan]:
        return list(self._spans)

    def add(self, spans: Iterable[ReceivedSpan]) -> None:
        self._spans.extend(spans)
        self._changed.set()

    def clear(self) -> None:
        self._spans.clear()

    def trace(self, trace_id: str) -> list[ReceivedSpan]:
        return [s for s in self._spans if s.trace_id == trace_id]

    async def wait_for(
        self, predicate: Callable[[list[ReceivedSpan]], bool], *, within: float = 10.0
    ) -> list[ReceivedSpan]:
        """Wait until `predicate(all spans so far)` holds; TimeoutError otherwise."""
        async with asyncio.timeout(within):
            while not predicate(self.spans):
                self._changed.clear()
                await self._changed.wait()
        return self.spans

    async def wait_for_trace(
        self, trace_id: str, *, services: Iterable[str], within: float = 10.0
    ) -> list[ReceivedSpan]:
        """Wait until the trace holds spans of every service named (short or full names)."""
        wanted = {s.removeprefix("tailwire-") for s in services}

        def complete(spans: list[ReceivedSpan]) -> bool:
            present = {s.short_service for s in spans if s.trace_id == trace_id}
            return wanted <= present

        await self.wait_for(complete, within=within)
        return self.trace(trace_id)


def span_tree(spans: Iterable[ReceivedSpan], *, title: str | None = None) -> Tree:
    """A rich Tree of one trace's spans: parent -> children, by start time, with the
    service, the name and the duration; spans whose parent was not received hang at the root."""
    spans = sorted(spans, key=lambda s: s.start_ns)
    if not spans:
        return Tree(title or "(no spans)")
    origin = spans[0].start_ns
    known = {s.span_id for s in spans}
    children: dict[str | None, list[ReceivedSpan]] = {}
    for span in spans:
        parent = span.parent_span_id if span.parent_span_id in known else None
        children.setdefault(parent, []).append(span)
    root = Tree(title or f"trace {spans[0].trace_id}")

    def add(node: Tree, parent: str | None) -> None:
        for span in children.get(parent, []):
            offset = (span.start_ns - origin) / 1e6
            label = (
                f"[bold]{span.short_service}[/bold] {span.name} "
                f"[dim]+{offset:.1f} ms, {span.duration_ms:.1f} ms[/dim]"
            )
            add(node.add(label), span.span_id)

    add(root, None)
    return root


def _body(request_body: bytes, encoding: str) -> bytes:
    if encoding == "gzip":
        return gzip.decompress(request_body)
    if encoding == "deflate":
        return zlib.decompress(request_body)
    return request_body


@contextlib.asynccontextmanager
async def serve(*, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[OtlpReceiver]:
    """Receive OTLP/HTTP traces on `host` (a free port unless given) for the block."""
    receiver = OtlpReceiver()

    async def traces(request: web.Request) -> web.Response:
        raw = _body(await request.read(), request.headers.get("Content-Encoding", "").lower())
        try:
            receiver.add(decode(raw))
        except DecodeError as exc:  # a malformed body is the sender's problem, not ours
            return web.Response(status=400, text=f"cannot decode ExportTraceServiceRequest: {exc}")
        response = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
        return web.Response(body=response, content_type="application/x-protobuf")

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/v1/traces", traces)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = runner.addresses[0][1]
        receiver.url = f"http://{host}:{bound}"
        yield receiver
    finally:
        await runner.cleanup()
