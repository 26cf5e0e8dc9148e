"""A plan that failed for some pod is re-applied on the (faked) clock until it converges;
one that succeeded is left alone."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tailwire.services.nodeagent import handlers
from tailwire.shared import ids
from tailwire.shared.events import nodes
from tests.nodeagent import conftest as nodeagent


class StopAfter:
    """A sleep that returns at once and ends the loop after `ticks` calls."""

    def __init__(self, ticks: int) -> None:
        self.ticks = ticks
        self.calls: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.calls.append(delay)
        if len(self.calls) > self.ticks:
            raise asyncio.CancelledError


def failing_plan() -> nodes.NodePlan:
    return nodes.NodePlan(
        node=ids.NodeName(nodeagent.NODE),
        generation=4,
        gateways=(
            nodes.GatewayAssignment(
                group=ids.GroupName("g"), netns="tw-absent", fwmark=1, table=100
            ),
        ),
    )


async def test_failed_plans_are_reapplied_on_the_clock(short_root: Path) -> None:
    agent = nodeagent.make_agent(short_root)
    sleep = StopAfter(ticks=3)
    agent.sleep = sleep
    wiring = handlers.Wiring(agent=agent, retry_interval=7.0)
    await wiring.handle_plan(failing_plan())
    first = agent.last_ack
    assert agent.needs_retry
    with pytest.raises(asyncio.CancelledError):
        await wiring.retry_failures()
    assert sleep.calls == [7.0, 7.0, 7.0, 7.0]
    assert agent.last_ack is not first
    assert agent.last_ack is not None
    assert agent.last_ack.generation == 4


async def test_converged_plans_are_not_reapplied(short_root: Path) -> None:
    agent = nodeagent.make_agent(short_root)
    agent.sleep = StopAfter(ticks=2)
    wiring = handlers.Wiring(agent=agent)
    await wiring.handle_plan(failing_plan().model_copy(update={"gateways": ()}))
    first = agent.last_ack
    assert not agent.needs_retry
    with pytest.raises(asyncio.CancelledError):
        await wiring.retry_failures()
    assert agent.last_ack is first


async def test_older_generations_are_ignored(short_root: Path) -> None:
    agent = nodeagent.make_agent(short_root)
    wiring = handlers.Wiring(agent=agent)
    await wiring.handle_plan(failing_plan())
    await wiring.handle_plan(failing_plan().model_copy(update={"generation": 3, "gateways": ()}))
    assert agent.last_plan is not None
    assert agent.last_plan.generation == 4
