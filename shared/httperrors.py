"""HTTP outcomes of the control APIs (Tailscale, Headscale) as the project's errors.

429 and 5xx -> TransientBackendError carrying `Retry-After`; 401/403 -> AuthenticationFailed;
404 -> NotFound; 409 -> Conflict; other 4xx -> PermanentBackendError; a connection, timeout
or protocol failure -> TransientBackendError. Messages are built from the operation, the
status and the server's own (redacted) message only, never from a request body or header.
Used by every adapter that talks to a control API (keyminter, dnsupdater).
"""

from __future__ import annotations

import datetime
import email.utils
from typing import Any

import httpx

from tailwire.shared import errors, telemetry


def retry_after_seconds(value: str | None, *, now: datetime.datetime) -> float | None:
    """`Retry-After` as seconds: delta-seconds or an HTTP date (RFC 9110)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (moment - now).total_seconds())


def _server_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
        return telemetry.redact(text[:200]) if text else response.reason_phrase
    message = body.get("message") if isinstance(body, dict) else None
    return telemetry.redact(str(message)[:300]) if message else response.reason_phrase


def check_response(response: httpx.Response, *, what: str, now: datetime.datetime) -> None:
    """Raise the project's error for a non-2xx response; `what` names the operation."""
    status = response.status_code
    if status < 400:
        return
    message = f"{what}: HTTP {status}: {_server_message(response)}"
    if status == 429 or status >= 500:
        hint = retry_after_seconds(response.headers.get("Retry-After"), now=now)
        raise errors.TransientBackendError(message, retry_after=hint)
    if status in (401, 403):
        raise errors.AuthenticationFailed(message)
    if status == 404:
        raise errors.NotFound(message)
    if status == 409:
        raise errors.Conflict(message)
    raise errors.PermanentBackendError(message)


async def send(
    http: httpx.AsyncClient, method: str, path: str, *, what: str, **kwargs: Any
) -> httpx.Response:
    """`http.request(...)` with a transport failure as `transport_error`; the caller checks
    the status (`check_response`), so it can act on a 401 first."""
    try:
        return await http.request(method, path, **kwargs)
    except httpx.HTTPError as exc:
        raise transport_error(exc, what=what) from None


def transport_error(exc: httpx.HTTPError, *, what: str) -> errors.BackendError:
    """A connection, timeout or protocol failure: transient (the URL is kept, no query)."""
    return errors.TransientBackendError(f"{what}: {type(exc).__name__}")
