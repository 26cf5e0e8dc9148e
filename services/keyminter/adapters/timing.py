"""Time for the keyminter: a `Clock` (now) and a `Sleeper` (wait), both injectable.

Renewal, token caching, backoff and the per-tailnet rate limit read time only through
these, so tests move a fake clock instead of sleeping. This module must not decide
anything about keys.
"""

from __future__ import annotations

import asyncio
import datetime
from typing import Protocol


class Clock(Protocol):
    """Anything that tells the current time as an aware UTC datetime."""

    def now(self) -> datetime.datetime: ...


class Sleeper(Protocol):
    """Waits `seconds` on the same time source as the Clock it goes with (a test's sleeper
    advances its fake clock and returns at once); the rate limiter relies on that."""

    async def __call__(self, seconds: float, /) -> None: ...


class SystemClock:
    def now(self) -> datetime.datetime:
        return datetime.datetime.now(tz=datetime.UTC)


async def real_sleep(seconds: float, /) -> None:
    await asyncio.sleep(seconds)
