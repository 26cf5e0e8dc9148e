"""One whole system per e2e package run: every service as its own process on a secured
nats-server (tailwire.testing.system), shared by the tests of this package to keep the
suite's wall time low. Tests use their own namespaces and groups so they do not interfere."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from tailwire.testing import netns, system

NODES = ("node-a", "node-b")


@pytest_asyncio.fixture(scope="package", loop_scope="package")
async def whole_system() -> AsyncIterator[system.System]:
    async with system.running(system.Options(nodes=NODES)) as running:
        yield running


def netns_skip_reason() -> str | None:
    reason = netns.unavailable_reason()
    return (
        f"no real network namespaces here ({reason}): the datapath part is skipped"
        if reason
        else None
    )


def stitched() -> bool | None:
    """What a member's ack result should say: applied with netns; without them the agent
    cannot find the pod's netns and reports why (either outcome is then accepted)."""
    return True if netns.unavailable_reason() is None else None
