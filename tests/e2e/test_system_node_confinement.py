"""A nodeagent's credentials cannot read another node's plan or publish its ack, while the
real nodeagent processes of both nodes run on the same secured nats-server."""

from __future__ import annotations

import asyncio

import nats.errors
import nats.js.errors
import pytest
from nats.js.api import ConsumerConfig, DeliverPolicy

from tailwire.shared import bus, permissions, subjects
from tailwire.testing import system
from tests.e2e import conftest

pytestmark = pytest.mark.asyncio(loop_scope="package")

NODE_A, NODE_B = conftest.NODES


async def test_node_a_credentials_cannot_read_b_plan_or_forge_b_ack(
    whole_system: system.System,
) -> None:
    s = whole_system
    ack_before = await s.last_ack(NODE_B)
    violations: list[str] = []

    async def on_error(exc: Exception) -> None:
        violations.append(str(exc).lower())

    agent_a = await s.connect_as(
        permissions.nodeagent_user(NODE_A),
        inbox_prefix=permissions.inbox_prefix(NODE_A),
        error_cb=on_error,
        allow_reconnect=False,
    )
    try:
        # Core NATS: B's plan subject, B's ack subject and the shared inbox space are refused.
        await agent_a.subscribe(subjects.node_plan(NODE_B))
        await agent_a.publish(subjects.node_ack(NODE_B), b'{"forged": true}')
        await agent_a.subscribe("_INBOX.>")
        await agent_a.flush()
        # JetStream: neither a consumer on B's plan nor a read through B's consumer.
        js = agent_a.jetstream(timeout=1)
        with pytest.raises((nats.errors.TimeoutError, nats.js.errors.Error)):
            await js.add_consumer(
                bus.NODES_STREAM,
                config=ConsumerConfig(
                    name=permissions.plan_consumer(NODE_B),
                    filter_subject=subjects.node_plan(NODE_B),
                    deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
                ),
                timeout=1,
            )
        with pytest.raises((nats.errors.TimeoutError, nats.js.errors.Error)):
            await js.get_last_msg(bus.NODES_STREAM, subjects.node_plan(NODE_B))
        await asyncio.sleep(0.2)  # let the server's -ERR lines arrive
    finally:
        await agent_a.close()

    joined = "\n".join(violations)
    assert f'subscription to "{subjects.node_plan(NODE_B)}"'.lower() in joined
    assert f'publish to "{subjects.node_ack(NODE_B)}"'.lower() in joined
    assert 'subscription to "_inbox.>"' in joined
    # Nothing forged reached the stream: B's last ack is still B's agent's own.
    ack_after = await s.last_ack(NODE_B)
    assert ack_after == ack_before or (ack_after is not None and ack_after.node == NODE_B)
    # And node B's real agent is still up and serving.
    assert s.nodeagent(NODE_B).running
