"""Time for the fake control plane: a `Clock` protocol, the wall clock and a clock tests move.

Token lifetimes, key expiry and device timestamps all read `Clock.now()`, so a test advances an
hour with `FakeClock.advance(seconds=3600)` instead of sleeping. This module must not sleep, and
must not be used for fault-injection latency (that delay is real time on purpose: it exists to
trip the client's own timeouts).
"""

from __future__ import annotations

import datetime
from typing import Protocol

# A fixed, recognisable start so timestamps in failing assertions are easy to read.
DEFAULT_START = datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)


class Clock(Protocol):
    """Anything that tells the current time as an aware UTC datetime."""

    def now(self) -> datetime.datetime: ...


class SystemClock:
    """The wall clock (for `tailwire dev`)."""

    def now(self) -> datetime.datetime:
        return datetime.datetime.now(tz=datetime.UTC)


class FakeClock:
    """A clock that only moves when told to."""

    def __init__(self, start: datetime.datetime = DEFAULT_START) -> None:
        if start.tzinfo is None:
            raise ValueError("FakeClock needs an aware datetime")
        self._now = start

    def now(self) -> datetime.datetime:
        return self._now

    def advance(self, *, seconds: float) -> datetime.datetime:
        """Move forward (never backward: expiry logic assumes time is monotonic)."""
        if seconds < 0:
            raise ValueError("a clock does not run backwards")
        self._now += datetime.timedelta(seconds=seconds)
        return self._now


def format_rfc3339(moment: datetime.datetime) -> str:
    """Render a timestamp the way both control APIs do: UTC, seconds precision, `Z`."""
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(text: str) -> datetime.datetime:
    """Parse an RFC 3339 timestamp (`Z` or an offset; fractional seconds allowed)."""
    moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"timestamp {text!r} has no offset")
    return moment.astimezone(datetime.UTC)
