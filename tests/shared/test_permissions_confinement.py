"""NATS permissions from shared.permissions, enforced by a real nats-server: a nodeagent's
credentials reach only its own node's plan and acks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import nats.errors
import nats.js.errors
import pytest
from nats.aio.client import Client
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from tailwire.shared import bus, ids, permissions, settings, subjects
from tailwire.shared.events import nodes
from tailwire.testing import natsserver

NODE_A = "node-a"
NODE_B = "ip-10-0-0-2.ec2.internal"
PASSWORDS = {
    "watcher": "w-pass",
    "keyminter": "k-pass",
    "renderer": "r-pass",
    "dnsupdater": "d-pass",
    permissions.nodeagent_user(NODE_A): "a-pass",
    permissions.nodeagent_user(NODE_B): "b-pass",
}


@pytest.fixture
def secured_nats(tmp_path: Path) -> Iterator[natsserver.NatsServer]:
    port = natsserver.free_port()
    config = permissions.render_nats_config(
        passwords=PASSWORDS,
        nodes=(NODE_A, NODE_B),
        listen=f"127.0.0.1:{port}",
        store_dir=str(tmp_path / "js"),
    )
    server = natsserver.NatsServer(store_dir=tmp_path, port=port, config_text=config)
    server.start()
    yield server
    server.stop()


async def _connect(
    server: natsserver.NatsServer,
    user: str,
    violations: list[str],
    inbox_prefix: str | None = None,
) -> Client:
    """`user`'s connection; a central service's replies come on its own inbox prefix."""

    async def on_error(exc: Exception) -> None:
        violations.append(str(exc))

    if inbox_prefix is None:
        inbox_prefix = bus.service_inbox_prefix(subjects.Service(user))
    return await nats.connect(
        server.url,
        user=user,
        password=PASSWORDS[user],
        error_cb=on_error,
        inbox_prefix=inbox_prefix,
    )


@pytest.fixture
async def plans_published(secured_nats: natsserver.NatsServer) -> AsyncIterator[None]:
    renderer = await _connect(secured_nats, "renderer", [])
    js = renderer.jetstream()
    await bus.declare_streams(js, bus=settings.BusSettings())
    for node in (NODE_A, NODE_B):
        plan = nodes.NodePlan(node=ids.NodeName(node), generation=1)
        await js.publish(subjects.node_plan(node), plan.to_bytes())
    yield
    await renderer.close()


@pytest.mark.usefixtures("plans_published")
async def test_nodeagent_reads_its_own_plan_through_a_scoped_consumer(
    secured_nats: natsserver.NatsServer,
) -> None:
    violations: list[str] = []
    agent = await _connect(
        secured_nats,
        permissions.nodeagent_user(NODE_A),
        violations,
        inbox_prefix=permissions.inbox_prefix(NODE_A),
    )
    js = agent.jetstream()
    name = permissions.plan_consumer(NODE_A)
    await js.add_consumer(
        bus.NODES_STREAM,
        config=ConsumerConfig(
            name=name,
            filter_subject=subjects.node_plan(NODE_A),
            deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
            ack_policy=AckPolicy.EXPLICIT,
        ),
    )
    sub = await js.pull_subscribe_bind(consumer=name, stream=bus.NODES_STREAM)
    (msg,) = await sub.fetch(1, timeout=5)
    assert nodes.NodePlan.model_validate_json(msg.data).node == NODE_A
    await msg.ack()
    await agent.publish(subjects.node_ack(NODE_A), b"{}")
    await agent.flush()
    await agent.close()
    assert violations == []


@pytest.mark.usefixtures("plans_published")
async def test_nodeagent_cannot_read_or_ack_for_another_node(
    secured_nats: natsserver.NatsServer,
) -> None:
    violations: list[str] = []
    agent = await _connect(
        secured_nats,
        permissions.nodeagent_user(NODE_A),
        violations,
        inbox_prefix=permissions.inbox_prefix(NODE_A),
    )
    # Core NATS: subscribing to node B's plan and publishing node B's ack are refused.
    await agent.subscribe(subjects.node_plan(NODE_B))
    await agent.publish(subjects.node_ack(NODE_B), b"{}")
    await agent.flush()
    # JetStream: a consumer filtered to node B's plan cannot even be created.
    js = agent.jetstream()
    with pytest.raises((nats.errors.TimeoutError, nats.js.errors.Error)):
        await js.add_consumer(
            bus.NODES_STREAM,
            config=ConsumerConfig(
                name=permissions.plan_consumer(NODE_A),
                filter_subject=subjects.node_plan(NODE_B),
            ),
            timeout=1,
        )
    # Nor may it listen on the shared inbox space where other agents' replies travel.
    await agent.subscribe("_INBOX.>")
    await agent.flush()
    await asyncio.sleep(0.1)
    await agent.close()
    joined = "\n".join(violations).lower()
    assert f'subscription to "{subjects.node_plan(NODE_B)}"'.lower() in joined
    assert f'publish to "{subjects.node_ack(NODE_B)}"'.lower() in joined
    assert 'subscription to "_inbox.>"' in joined


async def test_central_services_are_confined_to_their_subjects(
    secured_nats: natsserver.NatsServer,
) -> None:
    violations: list[str] = []
    keyminter = await _connect(secured_nats, "keyminter", violations)
    await keyminter.publish(subjects.node_plan(NODE_A), b"{}")
    await keyminter.flush()
    await asyncio.sleep(0.1)
    await keyminter.close()
    assert any("permissions violation for publish" in v.lower() for v in violations)
