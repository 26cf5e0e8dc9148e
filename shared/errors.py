"""The project's exception tree, drawn once.

Adapters convert foreign errors (httpx, kubernetes-asyncio, netlink, nats) into these at the
boundary, so handlers decide on *what went wrong* rather than on which library said it.
Messages never contain secrets: build them from names and fields, not from request bodies.
"""

from __future__ import annotations

import dataclasses


class TailwireError(Exception):
    """Base of everything tailwire raises on purpose."""


class ConfigurationError(TailwireError):
    """Settings or environment are unusable (missing credential, bad URL, ...)."""


class ValidationFailed(TailwireError):
    """A resource or message failed validation; `problems` name the field of each issue."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))


@dataclasses.dataclass(frozen=True, kw_only=True)
class Problem:
    """One validation problem: where (a dotted field path) and what."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


class SubjectError(TailwireError, ValueError):
    """A subject or subject token cannot be built or parsed."""


class BusError(TailwireError):
    """Publishing to or consuming from NATS failed."""


class MessageRejected(TailwireError):
    """A bus message is malformed or of an unknown version; it goes to the dead-letter subject."""


class BackendError(TailwireError):
    """An external system (Kubernetes, control API, DNS, kernel) failed."""


class TransientBackendError(BackendError):
    """Worth retrying: timeouts, 429, 5xx, connection resets.

    `retry_after` carries the server's hint in seconds (e.g. from `Retry-After`), if any.
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentBackendError(BackendError):
    """Retrying will not help until something changes: 400, 401, 403, 404 on create, bad input."""


class AuthenticationFailed(PermanentBackendError):
    """Credentials were refused (401/403). Reported on status; never retried in a loop."""


class NotFound(PermanentBackendError):
    """The object does not exist (or its API/CRD is not installed)."""


class Conflict(BackendError):
    """Optimistic concurrency lost (409); re-read and retry."""


class DatapathError(BackendError):
    """A netlink or nftables change failed on a node."""
