"""The bus through a real nats-server: trace context, deduplication, dead letters, expiring
tombstones."""

from __future__ import annotations

import asyncio
import contextlib
import json

import nats.errors
import nats.js.errors
import pytest
from nats.aio.client import Client
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tailwire.shared import bus, settings, subjects, telemetry
from tailwire.shared.events import cluster, deadletter

POD = cluster.PodSnapshot(
    meta=cluster.Meta(uid="uid-1", namespace="payments", name="api-0", resource_version="7"),
    node_name="node-a.ec2.internal",
    phase="Running",
    pod_ips=("10.244.1.5",),
)


async def test_snapshot_reaches_second_broker_with_same_trace_id(
    bus_settings: settings.BusSettings,
) -> None:
    exported = InMemorySpanExporter()
    provider_a = telemetry.setup_tracing(service_name="a", exporter=exported, set_global=False)
    provider_b = telemetry.setup_tracing(service_name="b", exporter=exported, set_global=False)
    producer = bus.make_broker(service="watcher", bus=bus_settings, tracer_provider=provider_a)
    consumer = bus.make_broker(service="renderer", bus=bus_settings, tracer_provider=provider_b)
    received: asyncio.Queue[tuple[cluster.PodSnapshot, str | None]] = asyncio.Queue()

    @consumer.subscriber(
        subjects.cluster_filter(subjects.Kind.POD), stream=bus.stream(bus.CLUSTER_STREAM)
    )
    async def on_pod(snapshot: cluster.PodSnapshot) -> None:
        from opentelemetry import trace

        ctx = trace.get_current_span().get_span_context()
        await received.put((snapshot, format(ctx.trace_id, "032x") if ctx.is_valid else None))

    await bus.connect_and_declare(producer, bus=bus_settings)
    await bus.connect_and_declare(consumer, bus=bus_settings)
    await consumer.start()
    await producer.start()
    try:
        tracer = provider_a.get_tracer("test")
        with tracer.start_as_current_span("change") as span:
            await bus.publish(producer, POD, subject=subjects.cluster(POD.ref), msg_id=POD.dedup_id)
            sent_trace = format(span.get_span_context().trace_id, "032x")
        async with asyncio.timeout(5):
            snapshot, seen_trace = await received.get()
    finally:
        await producer.stop()
        await consumer.stop()
    assert snapshot == POD
    assert seen_trace == sent_trace
    services = {
        s.resource.attributes["service.name"]
        for s in exported.get_finished_spans()
        if format(s.context.trace_id, "032x") == sent_trace
    }
    assert services == {"a", "b"}


async def test_duplicate_msg_id_is_stored_once(
    bus_settings: settings.BusSettings, nats_client: Client
) -> None:
    producer = bus.make_broker(service="watcher", bus=bus_settings)
    await bus.connect_and_declare(producer, bus=bus_settings)
    await producer.start()
    try:
        for _ in range(3):
            await bus.publish(producer, POD, subject=subjects.cluster(POD.ref), msg_id=POD.dedup_id)
        newer = POD.model_copy(
            update={"meta": POD.meta.model_copy(update={"resource_version": "8"})}
        )
        await bus.publish(producer, newer, subject=subjects.cluster(POD.ref), msg_id=newer.dedup_id)
    finally:
        await producer.stop()
    js = nats_client.jetstream()
    info = await js.stream_info(bus.CLUSTER_STREAM)
    # Three publishes of rv 7 were one message; rv 8 replaced it (last per subject).
    assert info.state.messages == 1
    sub = await js.subscribe(subjects.cluster_filter(), ordered_consumer=True)
    first = await sub.next_msg(timeout=2)
    assert json.loads(first.data)["meta"]["resource_version"] == "8"
    assert first.header is not None
    assert first.header[bus.MSG_ID_HEADER] == "uid-1:8"
    await sub.unsubscribe()
    # And the consumer-visible sequence shows the duplicates never reached the stream.
    assert info.state.last_seq == 2


async def test_malformed_message_lands_on_dead_letter_subject(
    bus_settings: settings.BusSettings, nats_client: Client
) -> None:
    consumer = bus.make_broker(service="renderer", bus=bus_settings)
    handled: list[cluster.PodSnapshot] = []

    @consumer.subscriber(
        subjects.cluster_filter(subjects.Kind.POD), stream=bus.stream(bus.CLUSTER_STREAM)
    )
    async def on_pod(snapshot: cluster.PodSnapshot) -> None:
        handled.append(snapshot)

    await bus.connect_and_declare(consumer, bus=bus_settings)
    await consumer.start()
    js = nats_client.jetstream()
    letters = await js.subscribe(subjects.deadletter("renderer"), ordered_consumer=True)
    try:
        bad = json.dumps(
            {
                "version": 1,
                "type": "cluster.snapshot",
                "kind": "pod",
                "meta": {"uid": "u", "name": "x"},
                "pod_ips": "not-a-list",
            }
        ).encode()
        await js.publish("tailwire.v1.cluster.pod.ns.x", bad)
        wrong_version = POD.model_dump(mode="json") | {"version": 2}
        await js.publish("tailwire.v1.cluster.pod.ns.y", json.dumps(wrong_version).encode())
        await js.publish("tailwire.v1.cluster.pod.ns.z", POD.to_bytes())
        first = deadletter.DeadLetter.model_validate_json((await letters.next_msg(timeout=5)).data)
        second = deadletter.DeadLetter.model_validate_json((await letters.next_msg(timeout=5)).data)
        for _ in range(50):
            if handled:
                break
            await asyncio.sleep(0.05)
    finally:
        await consumer.stop()
    assert first.subject == "tailwire.v1.cluster.pod.ns.x"
    assert "pod_ips" in first.reason
    assert second.subject == "tailwire.v1.cluster.pod.ns.y"
    assert "version" in second.reason
    # The service kept running and handled the good message after the bad ones.
    assert handled == [POD]


async def test_a_tombstone_expires_and_takes_its_subject_with_it(
    bus_settings: settings.BusSettings, nats_client: Client
) -> None:
    """Deleted objects must not keep a subject in TAILWIRE_CLUSTER forever (every pod name
    that ever existed would): published with a TTL, the tombstone goes, the subject too."""
    producer = bus.make_broker(service="watcher", bus=bus_settings)
    await bus.connect_and_declare(producer, bus=bus_settings)
    await producer.start()
    gone = POD.model_copy(update={"deleted": True})
    other = POD.model_copy(
        update={"meta": POD.meta.model_copy(update={"uid": "uid-2", "name": "api-1"})}
    )
    try:
        await bus.publish(producer, other, subject=subjects.cluster(other.ref))
        await bus.publish(producer, gone, subject=subjects.cluster(gone.ref), ttl=1)
    finally:
        await producer.stop()
    js = nats_client.jetstream()
    message = await js.get_last_msg(bus.CLUSTER_STREAM, subjects.cluster(gone.ref))
    assert message.headers is not None
    assert message.headers[bus.TTL_HEADER] == "1s"

    async def subjects_left() -> set[str]:
        info = await js.stream_info(bus.CLUSTER_STREAM, subjects_filter=">")
        return set(info.state.subjects or {})

    assert await subjects_left() == {subjects.cluster(gone.ref), subjects.cluster(other.ref)}
    async with asyncio.timeout(10):
        while subjects.cluster(gone.ref) in await subjects_left():  # noqa: ASYNC110
            await asyncio.sleep(0.2)
    # The live object's snapshot, published without a TTL, stays.
    assert await subjects_left() == {subjects.cluster(other.ref)}


async def test_an_existing_cluster_stream_is_brought_to_accept_ttls(
    bus_settings: settings.BusSettings, nats_client: Client
) -> None:
    """A deployment upgraded from a version whose CLUSTER stream had no per-message TTL."""
    js = nats_client.jetstream()
    with contextlib.suppress(nats.js.errors.NotFoundError):
        await js.delete_stream(bus.CLUSTER_STREAM)
    await js.add_stream(name=bus.CLUSTER_STREAM, subjects=list(subjects.CLUSTER_STREAM_SUBJECTS))
    assert not (await js.stream_info(bus.CLUSTER_STREAM)).config.allow_msg_ttl
    await bus.declare_streams(js, bus=bus_settings)
    assert (await js.stream_info(bus.CLUSTER_STREAM)).config.allow_msg_ttl


async def test_connection_trouble_is_logged_once_per_reason_and_then_every_30_s(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [100.0]
    trouble = bus.ConnectionTrouble("nodeagent", clock=lambda: now[0])
    violation = nats.errors.Error("nats: 'Authorization Violation'")
    for _ in range(5):
        await trouble(violation)
    await trouble(TimeoutError())
    now[0] += 30
    await trouble(violation)
    said = [r.getMessage() for r in caplog.records]
    assert said == [
        "nodeagent: NATS connection: nats: 'Authorization Violation'",
        "nodeagent: NATS connection: TimeoutError",
        "nodeagent: NATS connection: nats: 'Authorization Violation'",
    ]
