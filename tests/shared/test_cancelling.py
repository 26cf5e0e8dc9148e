"""`cancel_and_wait` ends every task, even one that lost a cancellation, and says so."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest

from tailwire.shared import cancelling


async def swallows_first_cancellation(state: list[str]) -> None:
    # What a loop around Python 3.11's wait_for does when the cancellation and the result
    # arrive together: it goes on as if nothing happened.
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.sleep(60)
    state.append("went on")
    await asyncio.Event().wait()  # until cancelled again


async def test_a_task_that_ignored_a_cancellation_is_cancelled_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    state: list[str] = []
    stubborn = asyncio.create_task(swallows_first_cancellation(state), name="stubborn")
    polite = asyncio.create_task(asyncio.sleep(60), name="polite")
    await asyncio.sleep(0)
    with caplog.at_level(logging.WARNING, logger=cancelling.__name__):
        async with asyncio.timeout(5):
            await cancelling.cancel_and_wait([stubborn, polite], patience=0.05)
    assert state == ["went on"]
    assert stubborn.cancelled()
    assert polite.cancelled()
    assert "task 'stubborn' did not end on cancellation; cancelling it again" in caplog.text
    assert "polite" not in caplog.text


async def test_a_task_that_had_failed_is_logged_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def fail() -> None:
        raise RuntimeError("boom")

    failed = asyncio.create_task(fail(), name="sync-loop")
    finished = asyncio.create_task(asyncio.sleep(0), name="finished")
    await asyncio.sleep(0.01)
    with caplog.at_level(logging.ERROR, logger=cancelling.__name__):
        await cancelling.cancel_and_wait([failed, finished])
    assert "task 'sync-loop' had failed: boom" in caplog.text
    assert "finished" not in caplog.text


async def test_nothing_to_stop_returns_at_once() -> None:
    async with asyncio.timeout(1):
        await cancelling.cancel_and_wait([])
