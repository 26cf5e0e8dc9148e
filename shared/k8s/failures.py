"""Kubernetes API failures in the project's own terms, decided once for every adapter.

404 -> NotFound, 409 -> Conflict, 401/403 -> AuthenticationFailed, 429 and 5xx (and a
connection that failed) -> TransientBackendError, any other 4xx -> PermanentBackendError.
Messages carry the operation and the status line only, never a request body.
"""

from __future__ import annotations

from kubernetes_asyncio.client.exceptions import ApiException

from tailwire.shared import errors


def from_status(status: int, *, what: str, detail: str = "") -> errors.BackendError:
    message = f"{what}: HTTP {status} {detail}".strip()
    if status == 404:
        return errors.NotFound(message)
    if status == 409:
        return errors.Conflict(message)
    if status in (401, 403):
        return errors.AuthenticationFailed(message)
    if status == 429 or status >= 500:
        return errors.TransientBackendError(message)
    return errors.PermanentBackendError(message)


def convert(exc: BaseException, *, what: str) -> errors.BackendError:
    """An ApiException by its status; anything else (aiohttp, timeouts) as unreachable."""
    if isinstance(exc, ApiException):
        return from_status(exc.status or 0, what=what, detail=exc.reason or "")
    return errors.TransientBackendError(f"{what}: Kubernetes API unreachable: {type(exc).__name__}")
