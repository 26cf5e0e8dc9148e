"""An OAuth client-credentials session on the Tailscale API v2, for every service that calls it.

The keyminter (keys, devices) and the dnsupdater (split DNS) both authenticate as an OAuth
client: `POST /api/v2/oauth/token`, the access token cached until shortly before
`expires_in` (or half its life, if that is shorter), and one fresh token when the API
answers 401 (revoked or expired early), after which the 401 stands. HTTP outcomes become
the project's exceptions through `httperrors`.
Must not: retry on its own (callers decide), log a request, or put the client secret or a
token into any message or repr.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Callable
from typing import Any

import httpx
from pydantic import SecretStr

from tailwire.shared import errors, httperrors

TOKEN_PATH = "/api/v2/oauth/token"  # noqa: S105 (an endpoint, not a credential)
# Fetch a new token this long before the old one expires (or at half its life if shorter).
TOKEN_MARGIN = datetime.timedelta(seconds=60)


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(tz=datetime.UTC)


@dataclasses.dataclass(frozen=True, kw_only=True)
class _Token:
    value: SecretStr = dataclasses.field(repr=False)
    refresh_at: datetime.datetime


class OAuthSession:
    """Authenticated requests to one Tailscale API (the `http` client's base URL)."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        client_id: str,
        client_secret: SecretStr,
        now: Callable[[], datetime.datetime] = utcnow,
    ) -> None:
        self._http = http
        self._client_id = client_id
        self._client_secret = client_secret
        self._now = now
        self._token: _Token | None = None

    def __repr__(self) -> str:
        return f"OAuthSession(client_id={self._client_id!r})"

    async def _access_token(self) -> SecretStr:
        now = self._now()
        if self._token is not None and now < self._token.refresh_at:
            return self._token.value
        form = {
            "client_id": self._client_id,
            "client_secret": self._client_secret.get_secret_value(),
            "grant_type": "client_credentials",
        }
        response = await httperrors.send(
            self._http, "POST", TOKEN_PATH, what="oauth token", data=form
        )
        httperrors.check_response(response, what="oauth token", now=now)
        try:
            body = response.json()
            value = SecretStr(str(body["access_token"]))
            lifetime = datetime.timedelta(seconds=float(body.get("expires_in", 3600)))
        except (ValueError, KeyError, TypeError):
            raise errors.PermanentBackendError("oauth token: malformed response") from None
        margin = min(TOKEN_MARGIN, lifetime / 2)
        self._token = _Token(value=value, refresh_at=now + lifetime - margin)
        return value

    async def request(
        self,
        method: str,
        path: str,
        *,
        what: str,
        json: Any = None,
        params: dict[str, str] | None = None,
    ) -> httpx.Response:
        """The response of a successful call; the project's exception otherwise."""
        for attempt in (1, 2):
            token = await self._access_token()
            headers = {"Authorization": f"Bearer {token.get_secret_value()}"}
            response = await httperrors.send(
                self._http, method, path, what=what, json=json, params=params, headers=headers
            )
            if response.status_code == 401 and attempt == 1:
                self._token = None
                continue
            httperrors.check_response(response, what=what, now=self._now())
            return response
        raise AssertionError("unreachable")  # pragma: no cover
