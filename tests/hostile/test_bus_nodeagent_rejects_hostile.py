"""The nodeagent under hostile plans and gateway configs on its real subjects: each is
dead-lettered with a reason (a config whose hash lies too), no exception escapes, and the
agent still applies and acks its next good plan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nats.aio.client import Client
from opentelemetry.sdk.trace import TracerProvider

from tailwire.services.nodeagent import app
from tailwire.shared import ids, runtime, subjects
from tailwire.shared import settings as tw_settings
from tailwire.shared.events import gateways, nodes

from . import harness, payloads

NODE = "node-h.example.internal"
BODY = {"Version": "alpha0", "Hostname": "g"}
CONFIG = gateways.GatewayConfig(
    group=ids.GroupName("g"),
    tailnet="t",
    generation=1,
    config=BODY,
    hash=gateways.config_hash(BODY),
)
FEEDS = [
    (nodes.NodePlan(node=ids.NodeName(NODE), generation=1), [subjects.node_plan(NODE)]),
    (CONFIG, [subjects.gateway_config("g"), subjects.gateway_config("Ünï.cödé")]),
]
LYING_HASH = st.builds(
    payloads.Hostile,
    subject=st.sampled_from([subjects.gateway_config("g"), subjects.gateway_config("h")]),
    body=st.text(min_size=1, max_size=20).map(
        lambda h: CONFIG.model_copy(update={"hash": "x" + h}).to_bytes()
    ),
    headers=st.just({}),
    why=st.just("config hash does not match"),
)


@pytest.fixture
async def agent(
    bus_settings: tw_settings.BusSettings,
    tracer_provider: TracerProvider,
    tmp_path: Path,
    nats_client: Client,  # the streams declared, as their owner (the renderer) would
) -> AsyncIterator[runtime.ServiceRuntime]:
    service = app.create(
        bus_settings=bus_settings,
        tracer_provider=tracer_provider,
        node_name=NODE,
        node_settings=tw_settings.NodeSettings(gateway_state_root=str(tmp_path / "gw")),
        retry_interval=3600,
    )
    await service.app.start()
    yield service
    await service.app.stop()


@pytest.fixture
async def rejections(nats_client: Client) -> harness.Rejections:
    collected = harness.Rejections(nats_client, service="nodeagent")
    await collected.open()
    return collected


@settings(
    max_examples=5,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batch=payloads.batches(*FEEDS, size=8, extra=LYING_HASH))
async def test_every_hostile_plan_or_config_is_dead_lettered(
    batch: list[payloads.Hostile],
    agent: runtime.ServiceRuntime,
    rejections: harness.Rejections,
) -> None:
    with harness.error_log() as errors_seen:
        await rejections.check(batch)
    assert errors_seen.lines() == []


async def test_a_good_plan_is_acked_after_hostile_ones(
    agent: runtime.ServiceRuntime, rejections: harness.Rejections, nats_client: Client
) -> None:
    junk = [
        payloads.Hostile(subject=subjects.node_plan(NODE), body=b"null", headers={}, why="null"),
        payloads.Hostile(
            subject=subjects.node_plan(NODE), body=b'{"version":1}', headers={}, why="empty"
        ),
    ]
    acks = await nats_client.subscribe(subjects.node_ack(NODE))
    await rejections.check(junk)
    good = nodes.NodePlan(node=ids.NodeName(NODE), generation=7)
    await nats_client.jetstream().publish(subjects.node_plan(NODE), good.to_bytes())
    ack = nodes.NodeAck.model_validate_json((await acks.next_msg(timeout=10)).data)
    assert (ack.node, ack.generation) == (NODE, 7)
