"""Retries and rate limiting around a `Backend`: jittered backoff, Retry-After, token bucket.

`RetryingBackend` wraps any backend: every call first takes a token from its tailnet's
`RateLimiter`, and a `TransientBackendError` (429, 5xx, connection failure) is retried on the
`domain.Backoff` schedule, never sooner than the server's `Retry-After`. When the attempts
are spent, or the server asks for a longer wait than the backoff cap, the error leaves with
`retry_after` set so the handler can hand the message back to JetStream with that delay
instead of blocking. Permanent errors (400, 401, 403) are never retried. Time comes from the
injected clock and sleeper; this module must not call `asyncio.sleep` itself.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from tailwire.services.keyminter import domain
from tailwire.services.keyminter.adapters import backends, timing
from tailwire.shared import errors

log = logging.getLogger(__name__)

T = TypeVar("T")


class RateLimiter:
    """A token bucket: `rate` calls per second on average, bursts of up to `burst`."""

    def __init__(
        self, *, rate: float, burst: int, clock: timing.Clock, sleep: timing.Sleeper
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a rate limit needs rate > 0 and burst >= 1")
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._clock = clock
        self._sleep = sleep
        self._last = clock.now()
        self.waited = 0.0  # total seconds spent waiting, for tests and metrics

    def _refill(self) -> None:
        now = self._clock.now()
        elapsed = max(0.0, (now - self._last).total_seconds())
        self._last = now
        self._tokens = min(self._burst, self._tokens + elapsed * self._rate)

    async def acquire(self) -> None:
        self._refill()
        while self._tokens < 1.0:
            wait = (1.0 - self._tokens) / self._rate
            self.waited += wait
            await self._sleep(wait)
            self._refill()
        self._tokens -= 1.0


class RetryingBackend:
    """`Backend` with rate limiting and backoff around every call of the wrapped one."""

    def __init__(
        self,
        inner: backends.Backend,
        *,
        backoff: domain.Backoff,
        limiter: RateLimiter,
        sleep: timing.Sleeper,
        rng: random.Random | None = None,
    ) -> None:
        self.inner = inner
        self.name = inner.name
        self._backoff = backoff
        self._limiter = limiter
        self._sleep = sleep
        self._rng = rng or random.Random()

    async def _call(self, operation: Callable[[], Awaitable[T]]) -> T:
        attempt = 1
        while True:
            await self._limiter.acquire()
            try:
                return await operation()
            except errors.TransientBackendError as exc:
                delay = self._backoff.delay(
                    attempt=attempt, retry_after=exc.retry_after, rng=self._rng
                )
                if attempt >= self._backoff.attempts or delay > self._backoff.cap:
                    raise errors.TransientBackendError(str(exc), retry_after=delay) from None
                log.warning(
                    "%s: %s; attempt %d of %d, retrying in %.1fs",
                    self.name,
                    exc,
                    attempt,
                    self._backoff.attempts,
                    delay,
                )
                await self._sleep(delay)
                attempt += 1

    async def mint_key(
        self,
        *,
        tags: tuple[str, ...],
        reusable: bool,
        ephemeral: bool,
        preauthorized: bool,
        expiry_seconds: int,
        description: str,
    ) -> backends.MintedKey:
        return await self._call(
            lambda: self.inner.mint_key(
                tags=tags,
                reusable=reusable,
                ephemeral=ephemeral,
                preauthorized=preauthorized,
                expiry_seconds=expiry_seconds,
                description=description,
            )
        )

    async def delete_key(self, key_id: str) -> None:
        await self._call(lambda: self.inner.delete_key(key_id))

    async def list_keys(self) -> list[domain.KeyInfo]:
        return await self._call(self.inner.list_keys)

    async def list_devices(self) -> list[domain.Device]:
        return await self._call(self.inner.list_devices)

    async def delete_device(self, device_id: str) -> None:
        await self._call(lambda: self.inner.delete_device(device_id))
