"""docs/metrics.md lists exactly the `tailwire_*` metrics the services register, and a running
service exposes the common ones (messages, errors, lag) with bounded labels."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import aiohttp
import prometheus_client
from faststream.nats import NatsRouter
from prometheus_client import parser

from tailwire.cli import asyncapi, running
from tailwire.shared import bus, leadership, runtime, settings, subjects, telemetry
from tailwire.shared.events import cluster

DOC = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"


def documented() -> set[str]:
    names: set[str] = set()
    # The first cell of every table row names a metric.
    for name in re.findall(r"^\| `(tailwire_[a-z0-9_<>]+)`", DOC.read_text(), re.MULTILINE):
        if "<service>" in name:
            names.update(name.replace("<service>", str(s)) for s in subjects.Service)
        else:
            names.add(name)
    return names


def registered() -> set[str]:
    # Every service's modules are loaded (their metrics modules register on import).
    assert list(running.ServiceName)
    assert leadership.IS_LEADER
    asyncapi.service_brokers()  # every service's runtime: the common metrics get registered
    names = set()
    for family in prometheus_client.REGISTRY.collect():
        if family.name.startswith("tailwire_"):
            names.add(f"{family.name}_total" if family.type == "counter" else family.name)
    return names


def test_every_registered_metric_is_documented_and_nothing_else() -> None:
    have, doc = registered(), documented()
    assert not have - doc, f"not in docs/metrics.md: {sorted(have - doc)}"
    assert not doc - have, f"documented but not registered: {sorted(doc - have)}"


def pod(name: str) -> cluster.PodSnapshot:
    return cluster.PodSnapshot(
        meta=cluster.Meta(uid=f"uid-{name}", namespace="payments", name=name, resource_version="1"),
        node_name="node-a",
        phase="Running",
    )


async def test_a_running_service_counts_messages_errors_and_lag_by_feed(
    bus_settings: settings.BusSettings,
) -> None:
    seen: asyncio.Queue[str] = asyncio.Queue()
    router = NatsRouter()

    @router.subscriber(
        subjects.cluster_filter(subjects.Kind.POD), stream=bus.stream(bus.CLUSTER_STREAM)
    )
    async def on_pod(snapshot: cluster.PodSnapshot) -> None:
        await seen.put(snapshot.meta.name)

    service = runtime.build_app(
        service=subjects.Service.DNSUPDATER,
        routers=[router],
        bus_settings=bus_settings,
        tracer_provider=telemetry.setup_tracing(
            service_name="metrics-test", exporter="none", set_global=False
        ),
        health_port=0,
    )
    before = _samples(prometheus_client.generate_latest().decode())
    producer = bus.make_broker(service="watcher", bus=bus_settings)
    # The streams first, declared as their owner (the renderer) would: the service waits.
    await bus.connect_and_declare(producer, bus=bus_settings)
    await service.app.start()
    try:
        await producer.start()
        for name in ("api-0", "api-1"):
            snapshot = pod(name)
            await bus.publish(producer, snapshot, subject=subjects.cluster(snapshot.ref))
        await producer.publish(
            b'{"version": 1, "kind": "pod"}',
            subject="tailwire.v1.cluster.pod.payments.broken",
            stream=bus.CLUSTER_STREAM,
        )
        async with asyncio.timeout(10):
            assert {await seen.get() for _ in range(2)} == {"api-0", "api-1"}
        assert service.health is not None
        text = ""
        for _ in range(100):  # the dead letter is published after the handler failed
            async with (
                aiohttp.ClientSession() as session,
                session.get(f"http://127.0.0.1:{service.health.port}/metrics") as response,
            ):
                text = await response.text()
            if _delta(before, _samples(text), "tailwire_dnsupdater_published_messages_total"):
                break
            await asyncio.sleep(0.05)
    finally:
        await producer.stop()
        await service.app.stop()
    after = _samples(text)
    feed = {"handler": "cluster.pod"}
    assert _delta(before, after, "tailwire_dnsupdater_received_messages_total", feed) == 3
    assert (
        _delta(
            before, after, "tailwire_dnsupdater_received_processed_messages_exceptions_total", feed
        )
        >= 1
    )
    assert (
        _delta(
            before,
            after,
            "tailwire_dnsupdater_published_messages_total",
            {"destination": "deadletter"},
        )
        == 1
    )
    lag = {"stream": bus.CLUSTER_STREAM, "feed": "cluster.pod"}
    assert _delta(before, after, "tailwire_dnsupdater_message_lag_seconds_count", lag) == 3
    assert ("tailwire_dnsupdater_consumer_pending", tuple(sorted(lag.items()))) in after
    # No label carries a whole subject (object names would make the series unbounded).
    assert not [key for key in after if any("tailwire.v1." in v for _, v in key[1])]


Key = tuple[str, tuple[tuple[str, str], ...]]


def _samples(text: str) -> dict[Key, float]:
    out: dict[Key, float] = {}
    for family in parser.text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.startswith("tailwire_"):
                out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def _delta(
    before: dict[Key, float],
    after: dict[Key, float],
    name: str,
    labels: dict[str, str] | None = None,
) -> float:
    def total(samples: dict[Key, float]) -> float:
        return sum(
            value
            for (sample, found), value in samples.items()
            if sample == name and set((labels or {}).items()) <= set(found)
        )

    return total(after) - total(before)
