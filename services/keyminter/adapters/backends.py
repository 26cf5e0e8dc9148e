"""What every control-API backend offers the keyminter, and httpx errors mapped once.

`Backend` is the interface the handlers use (Tailscale and Headscale both implement it);
`check_response` and `transport_error` turn HTTP outcomes into the project's exception tree,
building messages from the method, path, status and the server's own message only, never
from a request body or a header. This module must not retry (see `retrying`).
"""

from __future__ import annotations

import dataclasses
import datetime
import email.utils
from typing import Protocol

import httpx
from pydantic import SecretStr

from tailwire.services.keyminter import domain
from tailwire.shared import errors, telemetry


@dataclasses.dataclass(frozen=True, kw_only=True)
class MintedKey:
    """A freshly minted key; `secret` is only ever written to a Secret."""

    key_id: str
    secret: SecretStr = dataclasses.field(repr=False)
    expires_at: datetime.datetime


class Backend(Protocol):
    """One tailnet's control API, as the keyminter needs it."""

    name: str

    async def mint_key(
        self,
        *,
        tags: tuple[str, ...],
        reusable: bool,
        ephemeral: bool,
        preauthorized: bool,
        expiry_seconds: int,
        description: str,
    ) -> MintedKey: ...

    async def delete_key(self, key_id: str) -> None: ...

    async def list_keys(self) -> list[domain.KeyInfo]: ...

    async def list_devices(self) -> list[domain.Device]: ...

    async def delete_device(self, device_id: str) -> None: ...


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


def transport_error(exc: httpx.HTTPError, *, what: str) -> errors.BackendError:
    """A connection, timeout or protocol failure: transient (the URL is kept, no query)."""
    return errors.TransientBackendError(f"{what}: {type(exc).__name__}")
