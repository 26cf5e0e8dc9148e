"""Issue 18, finding 8: one output the bus refuses (a node plan over the server's max_payload)
must not stop the renderer's other outputs: the other node's plan, the status summaries, the
key requests still go out on a real nats-server; the refused one is retried and logged."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from tailwire.shared import settings
from tailwire.testing import natsserver
from tests.renderer import helpers

MAX_PAYLOAD = 32 * 1024  # a node plan with 100 members is larger


@pytest.fixture
def small_nats(tmp_path: Path) -> Iterator[natsserver.NatsServer]:
    with natsserver.running(
        store_dir=tmp_path / "nats", config_text=f"max_payload: {MAX_PAYLOAD}\n"
    ) as server:
        yield server


async def test_an_oversized_plan_does_not_block_the_other_outputs(
    small_nats: natsserver.NatsServer, caplog: pytest.LogCaptureFixture
) -> None:
    bus_settings = settings.BusSettings(nats_url=small_nats.url)
    crowded = [helpers.pod(f"api-{i}", node_name="node-a") for i in range(100)]
    async with helpers.producer(bus_settings) as broker:
        await helpers.publish(
            broker,
            helpers.namespace("payments"),
            helpers.node("node-a"),
            helpers.node("node-b"),
            helpers.group("peers", helpers.PEERS_SPEC),
            *crowded,
            helpers.pod("lonely", node_name="node-b"),
        )
        with caplog.at_level(logging.ERROR):
            async with helpers.running_renderer(bus_settings, apply_manifests=False) as renderer:
                # Not `settled`: the refused plan keeps the loop retrying, never idle.
                async with asyncio.timeout(20):
                    while not (  # noqa: ASYNC110 (several conditions, no event for them)
                        "node-b" in renderer.published.plans
                        and len(renderer.published.summaries) == 1
                        and "peers" in renderer.published.key_requests
                    ):
                        await asyncio.sleep(0.05)
                assert "node-a" not in renderer.published.plans
    refused = [r.getMessage() for r in caplog.records if "not published" in r.getMessage()]
    assert refused, [r.getMessage() for r in caplog.records]
    assert "tailwire.v1.node.node-a.plan" in refused[0]
