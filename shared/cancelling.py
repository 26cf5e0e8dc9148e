"""Stopping background tasks so that shutdown always ends.

A cancellation can be lost: Python 3.11's `asyncio.wait_for` (used inside nats-py's
`request` and JetStream publish, among others) returns the result instead of raising when
the task is cancelled in the iteration its future completes. A loop around such a call then
goes on, and a plain `task.cancel(); await task` waits for ever. `cancel_and_wait` cancels
again, with a warning naming the task, until every task has ended.

Must not: swallow what a task raised other than its cancellation (it is logged), or return
while one of the tasks still runs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

log = logging.getLogger(__name__)


async def cancel_and_wait(tasks: Iterable[asyncio.Task[Any]], *, patience: float = 1.0) -> None:
    """Cancel the tasks and wait until all have ended, cancelling again every `patience`
    seconds those still running. A task that had failed is logged with its exception."""
    tasks = list(tasks)
    pending = {task for task in tasks if not task.done()}
    for task in pending:
        task.cancel()
    while pending:
        _, pending = await asyncio.wait(pending, timeout=patience)
        for task in pending:
            log.warning("task %r did not end on cancellation; cancelling it again", task.get_name())
            task.cancel()
    for task in tasks:
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error("task %r had failed: %s", task.get_name(), error, exc_info=error)
