"""The nodeagent on a real nats-server: its own node's latest plan in, an ack out, gateway
configs of the groups it hosts reloaded once per change, others' messages left alone."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from faststream.nats import NatsBroker
from nats.aio.client import Client
from opentelemetry.sdk.trace import TracerProvider

from tailwire.services.nodeagent import app
from tailwire.shared import bus, ids, runtime, settings, subjects
from tailwire.shared.events import deadletter, gateways, nodes
from tailwire.shared.k8s import names
from tailwire.testing import localapi

NODE = "node-a.ec2.internal"
GROUP = "payments"
TAILNET = "example.com"


def plan(*, node: str, generation: int, netns: str = "tw-absent") -> nodes.NodePlan:
    return nodes.NodePlan(
        node=ids.NodeName(node),
        generation=generation,
        gateways=(
            nodes.GatewayAssignment(
                group=ids.GroupName(GROUP), netns=netns, fwmark=0x1E, table=1717
            ),
        ),
    )


def config(*, group: str, generation: int) -> gateways.GatewayConfig:
    body = {"Version": "alpha0", "Hostname": f"{group}-{generation}"}
    return gateways.GatewayConfig(
        group=ids.GroupName(group),
        tailnet=TAILNET,
        generation=generation,
        config=body,
        hash=gateways.config_hash(body),
    )


async def eventually(predicate: Callable[[], bool], *, within: float = 10.0) -> None:
    """Poll a condition the agent reaches on its own (a background reload)."""
    async with asyncio.timeout(within):
        while not predicate():  # noqa: ASYNC110 (the fake LocalAPI offers no event)
            await asyncio.sleep(0.02)


@pytest.fixture
async def producer(
    bus_settings: settings.BusSettings, tracer_provider: TracerProvider
) -> AsyncIterator[NatsBroker]:
    broker = bus.make_broker(service="renderer", bus=bus_settings, tracer_provider=tracer_provider)
    await bus.connect_and_declare(broker, bus=bus_settings)
    await broker.start()
    yield broker
    await broker.stop()


def agent_runtime(
    bus_settings: settings.BusSettings, tracer_provider: TracerProvider, short_root: Path
) -> runtime.ServiceRuntime:
    return app.create(
        bus_settings=bus_settings,
        tracer_provider=tracer_provider,
        node_name=NODE,
        node_settings=settings.NodeSettings(gateway_state_root=str(short_root / "gw")),
        retry_interval=3600,
    )


async def test_latest_plan_is_applied_and_acked_and_configs_reloaded_once(
    bus_settings: settings.BusSettings,
    nats_client: Client,
    producer: NatsBroker,
    tracer_provider: TracerProvider,
    short_root: Path,
) -> None:
    for event, subject in (
        (plan(node=NODE, generation=1), subjects.node_plan(NODE)),
        (plan(node=NODE, generation=2), subjects.node_plan(NODE)),
        (plan(node="node-b", generation=7), subjects.node_plan("node-b")),
        (config(group=GROUP, generation=1), subjects.gateway_config(GROUP)),
        (config(group="elsewhere", generation=1), subjects.gateway_config("elsewhere")),
    ):
        await bus.publish(producer, event, subject=subject)
    state = Path(names.gateway_state_dir(group=GROUP, tailnet=TAILNET, root=str(short_root / "gw")))
    acks = await nats_client.jetstream().subscribe(
        subjects.node_acks_filter(), ordered_consumer=True
    )
    async with localapi.FakeLocalAPI(
        socket_path=state / names.GATEWAY_SOCKET_FILE,
        config_path=state / names.GATEWAY_CONFIG_FILE,
    ) as api:
        service = agent_runtime(bus_settings, tracer_provider, short_root)
        await service.app.start()
        try:
            message = await acks.next_msg(timeout=10)
            assert message.subject == subjects.node_ack(NODE)
            ack = nodes.NodeAck.model_validate_json(message.data)
            assert ack.generation == 2
            assert [(g.group, g.ok) for g in ack.gateways] == [(GROUP, False)]
            assert "tw-absent" in (ack.gateways[0].error or "")
            await eventually(lambda: api.calls == 1)

            async def next_ack() -> nodes.NodeAck:
                return nodes.NodeAck.model_validate_json((await acks.next_msg(timeout=10)).data)

            # Each reload re-states the ack of generation 2 with the config the gateway runs.
            first_hash, second_hash = (config(group=GROUP, generation=g).hash for g in (1, 2))
            assert [(a.generation, a.gateways[0].config_hash) for a in [await next_ack()]] == [
                (2, first_hash)
            ]
            await bus.publish(
                producer,
                config(group="elsewhere", generation=2),
                subject=subjects.gateway_config("elsewhere"),
            )
            await bus.publish(
                producer, config(group=GROUP, generation=2), subject=subjects.gateway_config(GROUP)
            )
            restated = await next_ack()
            assert (restated.generation, restated.gateways[0].config_hash) == (2, second_hash)
            assert api.calls == 2
            await bus.publish(
                producer, plan(node=NODE, generation=3), subject=subjects.node_plan(NODE)
            )
            third = await next_ack()
            assert (third.generation, third.gateways[0].config_hash) == (3, second_hash)
        finally:
            await service.app.stop()
    assert api.calls == 2
    assert json.loads((state / names.GATEWAY_CONFIG_FILE).read_text())["Hostname"] == (f"{GROUP}-2")
    assert not (short_root / "gw" / TAILNET / "elsewhere").exists()
    await acks.unsubscribe()


async def test_a_malformed_plan_is_dead_lettered_and_the_next_one_applied(
    bus_settings: settings.BusSettings,
    nats_client: Client,
    producer: NatsBroker,
    tracer_provider: TracerProvider,
    short_root: Path,
) -> None:
    js = nats_client.jetstream()
    letters = await js.subscribe(subjects.deadletter("nodeagent"), ordered_consumer=True)
    acks = await js.subscribe(subjects.node_ack(NODE), ordered_consumer=True)
    service = agent_runtime(bus_settings, tracer_provider, short_root)
    await service.app.start()
    try:
        bad = plan(node=NODE, generation=1).model_dump(mode="json")
        bad["gateways"][0]["fwmark"] = 0
        await js.publish(subjects.node_plan(NODE), json.dumps(bad).encode())
        letter = deadletter.DeadLetter.model_validate_json(
            (await letters.next_msg(timeout=10)).data
        )
        assert "fwmark" in letter.reason
        tracer = tracer_provider.get_tracer("test")
        with tracer.start_as_current_span("renderer publishes a plan") as span:
            await bus.publish(
                producer, plan(node=NODE, generation=2), subject=subjects.node_plan(NODE)
            )
            trace_id = format(span.get_span_context().trace_id, "032x")
        message = await acks.next_msg(timeout=10)
        ack = nodes.NodeAck.model_validate_json(message.data)
        assert ack.generation == 2
        # One change, one trace: the ack continues the plan's trace.
        assert message.header is not None
        assert trace_id in message.header.get("traceparent", "")
    finally:
        await service.app.stop()
