"""SIGTERM while the renderer is busy still stops it: a cancellation that arrives in the same
loop iteration as the event its tasks wait for must not be lost.

Python 3.11's `asyncio.wait_for` returns the result instead of raising when the awaited
future completes just as the waiting task is cancelled; in a `while True` loop that leaves a
task that can no longer be cancelled, and `Renderer.stop()` awaits it for ever (seen in CI:
the renderer ignored SIGTERM for 15 s right after its first reconcile). These tests cancel
at each interleaving around the wake-up, so any of them losing the cancellation fails.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from faststream.nats import NatsBroker

from tailwire.services.renderer import handlers
from tailwire.services.renderer.adapters import syncing
from tailwire.services.renderer.egress import options

INTERLEAVINGS = range(8)  # loop iterations between the wake-up and the cancellation


class IdleWriter:
    """Has nothing managed and accepts every write."""

    async def apply(self, manifest: object) -> None:
        return None

    async def list_managed(self, scope: object) -> list[tuple[str, str, str, str]]:
        return []

    async def delete(self, key: object) -> None:
        return None

    async def patch_status(self, *args: object) -> None:
        return None

    async def patch_finalizers(self, *args: object) -> None:
        return None

    async def close(self) -> None:
        return None


def make_sync() -> syncing.ManifestSync:
    return syncing.ManifestSync(writer=IdleWriter())  # type: ignore[arg-type]


async def cancel_at_wakeup(task: asyncio.Task[None], wake: Callable[[], None], settle: int) -> None:
    for _ in range(5):  # let the task reach its wait
        await asyncio.sleep(0)
    wake()
    for _ in range(settle):
        await asyncio.sleep(0)
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=2)
    assert done, f"the task ignored a cancellation {settle} loop iterations after its wake-up"
    assert task.cancelled()


@pytest.mark.parametrize("settle", INTERLEAVINGS)
async def test_the_sync_loop_ends_when_cancelled_as_a_change_arrives(settle: int) -> None:
    sync = make_sync()
    task = asyncio.create_task(sync.run())
    await cancel_at_wakeup(task, lambda: sync.update(syncing.Desired()), settle)


def make_renderer() -> handlers.Renderer:
    return handlers.Renderer(broker=NatsBroker(), opts=options.Options(), sync=None)


@pytest.mark.parametrize("settle", INTERLEAVINGS)
async def test_the_reconcile_loop_ends_when_cancelled_as_the_backlog_is_read(
    settle: int,
) -> None:
    renderer = make_renderer()
    await renderer.start()
    (task,) = renderer._tasks
    await cancel_at_wakeup(task, renderer.caught_up.set, settle)
