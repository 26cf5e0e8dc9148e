"""The renderer on a real nats-server: plans change only where desired state changed, and a
restart republishes nothing; no Kubernetes API is reachable here (it keeps retrying)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from nats.aio.client import Client
from nats.aio.msg import Msg
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tailwire.shared import bus, settings, subjects, telemetry
from tailwire.shared.events import nodes
from tests.renderer import helpers


async def test_pod_joining_a_group_publishes_one_plan_for_its_node_only(
    bus_settings: settings.BusSettings, nats_client: Client, tmp_path: Path
) -> None:
    async with helpers.producer(bus_settings) as broker:
        await helpers.publish(
            broker,
            helpers.namespace("payments"),
            helpers.node("node-a"),
            helpers.node("node-b"),
            helpers.group("peers", helpers.PEERS_SPEC),
            helpers.pod("api-0", node_name="node-a"),
            helpers.pod("api-1", node_name="node-b"),
        )
        factory = helpers.unreachable_api(tmp_path / "kubeconfig")
        async with helpers.running_renderer(bus_settings, kube_client_factory=factory) as renderer:
            await helpers.settled(
                renderer, lambda: set(renderer.published.plans) == {"node-a", "node-b"}
            )
            seen: list[nodes.NodePlan] = []

            async def collect(msg: Msg) -> None:
                seen.append(nodes.NodePlan.model_validate_json(msg.data))

            sub = await nats_client.subscribe(subjects.node_plans_filter(), cb=collect)
            await nats_client.flush()
            previous = renderer.published.plans["node-a"]
            await helpers.publish(broker, helpers.pod("api-2", node_name="node-a"))
            await helpers.settled(
                renderer,
                lambda: renderer.published.plans["node-a"].generation > previous.generation,
            )
            await nats_client.flush()
            await sub.unsubscribe()
    assert [(p.node, p.generation) for p in seen] == [("node-a", previous.generation + 1)]
    assert sorted(m.name for m in seen[0].members) == ["api-0", "api-2"]
    # The member that was there keeps its link addresses.
    assert [m.link for m in seen[0].members if m.name == "api-0"] == [
        m.link for m in previous.members
    ]


async def test_restart_republishes_nothing_that_did_not_change(
    bus_settings: settings.BusSettings, nats_client: Client
) -> None:
    async with helpers.producer(bus_settings) as broker:
        await helpers.publish(
            broker,
            helpers.namespace("payments"),
            helpers.node("node-a"),
            helpers.node("node-b"),
            helpers.group("peers", helpers.PEERS_SPEC),
            helpers.group("bad", {"selector": {}, "mode": "warp"}),
            helpers.pod("api-0", node_name="node-a"),
        )
        async with helpers.running_renderer(bus_settings, apply_manifests=False) as renderer:
            await helpers.settled(renderer, lambda: len(renderer.published.summaries) == 2)
            first_plans = dict(renderer.published.plans)
        sequences = await helpers.last_sequences(nats_client)
        async with helpers.running_renderer(bus_settings, apply_manifests=False) as again:
            await helpers.settled(again)
            assert again.published.plans == first_plans
        assert await helpers.last_sequences(nats_client) == sequences
        # ...and a change after the restart continues the generations.
        async with helpers.running_renderer(bus_settings, apply_manifests=False) as third:
            await helpers.settled(third)
            await helpers.publish(broker, helpers.pod("api-1", node_name="node-b"))
            await helpers.settled(
                third,
                lambda: (
                    third.published.plans["node-b"].generation
                    == first_plans["node-b"].generation + 1
                ),
            )
            assert third.published.plans["node-a"] == first_plans["node-a"]


async def test_malformed_snapshot_is_dead_lettered_and_rendering_goes_on(
    bus_settings: settings.BusSettings, nats_client: Client
) -> None:
    js = nats_client.jetstream()
    await js.publish("tailwire.v1.cluster.pod.payments.broken", b'{"version": 1, "kind": "pod"}')
    async with helpers.producer(bus_settings) as broker:
        await helpers.publish(
            broker, helpers.node("node-a"), helpers.group("peers", helpers.PEERS_SPEC)
        )
        async with helpers.running_renderer(bus_settings, apply_manifests=False) as renderer:
            await helpers.settled(renderer, lambda: "node-a" in renderer.published.plans)
            letter = await js.get_last_msg("TAILWIRE_WORK", subjects.deadletter("renderer"))
    assert letter.data is not None
    assert json.loads(letter.data)["subject"] == "tailwire.v1.cluster.pod.payments.broken"
    await asyncio.sleep(0)


async def test_plan_is_published_in_the_trace_of_the_snapshot_that_changed_it(
    bus_settings: settings.BusSettings, span_exporter: InMemorySpanExporter
) -> None:
    watcher_side = telemetry.setup_tracing(
        service_name="watcher", exporter=span_exporter, set_global=False
    )
    renderer_side = telemetry.setup_tracing(
        service_name="renderer", exporter=span_exporter, set_global=False
    )
    async with helpers.producer(bus_settings) as broker:
        await helpers.publish(
            broker, helpers.node("node-a"), helpers.group("peers", helpers.PEERS_SPEC)
        )
        async with helpers.running_renderer(
            bus_settings, apply_manifests=False, tracer_provider=renderer_side
        ) as renderer:
            await helpers.settled(renderer, lambda: "node-a" in renderer.published.plans)
            before = renderer.published.plans["node-a"].generation
            traced = bus.make_broker(
                service="watcher", bus=bus_settings, tracer_provider=watcher_side
            )
            await bus.connect_and_declare(traced, bus=bus_settings)
            await traced.start()
            try:
                with watcher_side.get_tracer("test").start_as_current_span("pod change") as span:
                    await helpers.publish(traced, helpers.pod("api-0", node_name="node-a"))
                    trace_id = span.get_span_context().trace_id
            finally:
                await traced.stop()
            await helpers.settled(
                renderer, lambda: renderer.published.plans["node-a"].generation > before
            )
    services = {
        s.resource.attributes["service.name"]
        for s in span_exporter.get_finished_spans()
        if s.context is not None
        and s.context.trace_id == trace_id
        and subjects.node_plan("node-a") in s.name
    }
    assert services == {"renderer"}
