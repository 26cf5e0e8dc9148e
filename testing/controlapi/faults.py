"""Fault injection and the request log of the fake control plane, configurable at runtime.

A test arms rules (`respond(status=429, retry_after=2, times=1, route=..., method=...)`,
`respond(status=503, fraction=0.3)`, `delay(seconds=0.2)`); the HTTP middleware asks `pick()`
and `latency()` on every request and records the outcome in the `RequestLog`. Randomness comes
from one seeded RNG, so a fraction-based run is reproducible. This module knows nothing about
aiohttp, and the log must never hold a request body, a header or a secret query parameter.
"""

from __future__ import annotations

import dataclasses
import datetime
import fnmatch
import random
from collections.abc import Iterator

# Query parameters that could carry a credential in some client's hands; never logged.
_SECRET_PARAMETERS = frozenset({"key", "client_secret", "access_token", "token", "secret"})


@dataclasses.dataclass(kw_only=True)
class FaultRule:
    """Answer matching requests with `status` instead of serving them.

    `route` is an `fnmatch` pattern on the path (`/api/v2/tailnet/*/keys`); `method` None
    matches every method. The rule fires `times` times (None: unlimited) and, when `fraction`
    is set, only on that share of matching requests.
    """

    route: str = "*"
    method: str | None = None
    status: int = 503
    times: int | None = None
    fraction: float | None = None
    retry_after: int | None = None
    message: str = ""
    hits: int = 0

    def matches(self, *, method: str, path: str) -> bool:
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return fnmatch.fnmatchcase(path, self.route)

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.hits >= self.times


@dataclasses.dataclass(kw_only=True)
class DelayRule:
    """Hold matching requests for `seconds` of real time before serving them."""

    route: str = "*"
    method: str | None = None
    seconds: float = 0.0

    def matches(self, *, method: str, path: str) -> bool:
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return fnmatch.fnmatchcase(path, self.route)


class Faults:
    """The armed rules; the first matching, non-exhausted rule that fires wins."""

    def __init__(self, *, seed: int = 0) -> None:
        self._rng = random.Random(seed)
        self._rules: list[FaultRule] = []
        self._delays: list[DelayRule] = []

    def respond(
        self,
        *,
        status: int,
        route: str = "*",
        method: str | None = None,
        times: int | None = 1,
        fraction: float | None = None,
        retry_after: int | None = None,
        message: str = "",
    ) -> FaultRule:
        """Arm a rule answering `status` (429 with `retry_after` sends `Retry-After`)."""
        if not 400 <= status <= 599:
            raise ValueError("a fault answers with a 4xx or 5xx status")
        if fraction is not None and not 0.0 <= fraction <= 1.0:
            raise ValueError("fraction is a share between 0 and 1")
        rule = FaultRule(
            route=route,
            method=method,
            status=status,
            times=times,
            fraction=fraction,
            retry_after=retry_after,
            message=message or _default_message(status),
        )
        self._rules.append(rule)
        return rule

    def delay(self, *, seconds: float, route: str = "*", method: str | None = None) -> DelayRule:
        """Arm artificial latency for matching requests."""
        rule = DelayRule(route=route, method=method, seconds=seconds)
        self._delays.append(rule)
        return rule

    def clear(self) -> None:
        self._rules.clear()
        self._delays.clear()

    def pick(self, *, method: str, path: str) -> FaultRule | None:
        """The rule that answers this request, counting the hit; None to serve it normally."""
        for rule in self._rules:
            if rule.exhausted or not rule.matches(method=method, path=path):
                continue
            # Draw only for matching fraction rules, so adding an unrelated rule does not
            # shift the sequence another rule sees.
            if rule.fraction is not None and self._rng.random() >= rule.fraction:
                continue
            rule.hits += 1
            return rule
        return None

    def latency(self, *, method: str, path: str) -> float:
        return sum(d.seconds for d in self._delays if d.matches(method=method, path=path))


def _default_message(status: int) -> str:
    if status == 429:
        return "rate limit exceeded, please retry later"
    if status >= 500:
        return "internal server error"
    return "injected failure"


@dataclasses.dataclass(frozen=True, kw_only=True)
class RequestRecord:
    """One served request: no body, no headers, secret-looking query parameters dropped."""

    method: str
    path: str
    query: tuple[tuple[str, str], ...]
    status: int
    at: datetime.datetime
    injected: bool


class RequestLog:
    """Every request the fake answered, in order, for assertions."""

    def __init__(self) -> None:
        self._records: list[RequestRecord] = []

    def record(
        self,
        *,
        method: str,
        path: str,
        query: list[tuple[str, str]],
        status: int,
        at: datetime.datetime,
        injected: bool,
    ) -> None:
        kept = tuple((k, v) for k, v in query if k.lower() not in _SECRET_PARAMETERS)
        self._records.append(
            RequestRecord(
                method=method, path=path, query=kept, status=status, at=at, injected=injected
            )
        )

    def __iter__(self) -> Iterator[RequestRecord]:
        return iter(list(self._records))

    def __len__(self) -> int:
        return len(self._records)

    def matching(self, *, method: str | None = None, route: str = "*") -> list[RequestRecord]:
        """Records whose method and path (an `fnmatch` pattern) match."""
        return [
            r
            for r in self._records
            if (method is None or r.method == method.upper()) and fnmatch.fnmatchcase(r.path, route)
        ]

    def clear(self) -> None:
        self._records.clear()
