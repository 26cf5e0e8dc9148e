"""Tailscale split DNS through the control API: point a zone at the tailnet resolver.

Deliberately minimal: an OAuth client-credentials token (cached until shortly before it
expires) and `GET`/`PATCH /api/v2/tailnet/{tailnet}/dns/split-dns`. httpx errors and HTTP
statuses become the project's exceptions here. The client secret and the token must never
be logged or put into an error message.
"""

from __future__ import annotations

import datetime
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import httpx
from pydantic import SecretStr

from tailwire.shared import httperrors

log = logging.getLogger(__name__)
_EARLY = 60.0  # renew this many seconds before the token expires


class SplitDns:
    """Keeps `zone -> nameservers` in the tailnet's split-DNS settings."""

    name = "tailscale"

    def __init__(
        self,
        *,
        http: httpx.AsyncClient,
        tailnet: str,
        client_id: str,
        client_secret: SecretStr,
        zones: Sequence[tuple[str, tuple[str, ...]]],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.http = http
        self.tailnet = tailnet
        self.zones = tuple(zones)
        self._client_id = client_id
        self._client_secret = client_secret
        self._clock = clock
        self._token: str | None = None
        self._expires = 0.0

    async def _request(self, method: str, path: str, *, what: str, **kwargs: Any) -> httpx.Response:
        try:
            return await self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise httperrors.transport_error(exc, what=what) from None

    async def _bearer(self) -> dict[str, str]:
        if self._token is None or self._clock() >= self._expires:
            response = await self._request(
                "POST",
                "/api/v2/oauth/token",
                what="tailscale oauth token",
                data={
                    "client_id": self._client_id,
                    "client_secret": self._client_secret.get_secret_value(),
                    "grant_type": "client_credentials",
                },
            )
            httperrors.check_response(
                response, what="tailscale oauth token", now=datetime.datetime.now(tz=datetime.UTC)
            )
            body = response.json()
            self._token = str(body["access_token"])
            self._expires = self._clock() + float(body.get("expires_in", 3600)) - _EARLY
        return {"Authorization": f"Bearer {self._token}"}

    async def _call(self, method: str, *, json: object = None) -> dict[str, list[str]]:
        path = f"/api/v2/tailnet/{self.tailnet}/dns/split-dns"
        what = f"tailscale split-dns {method}"
        response = await self._request(
            method, path, what=what, headers=await self._bearer(), json=json
        )
        if response.status_code == 401:
            self._token = None  # revoked or expired early: mint again next time
        httperrors.check_response(response, what=what, now=datetime.datetime.now(tz=datetime.UTC))
        return {str(k): [str(s) for s in v] for k, v in response.json().items()}

    async def ensure(self) -> bool:
        """PATCH the zones whose nameservers differ; True if it wrote."""
        current = await self._call("GET")
        wanted = {zone: list(servers) for zone, servers in self.zones}
        changes = {zone: s for zone, s in wanted.items() if current.get(zone) != s}
        if not changes:
            return False
        await self._call("PATCH", json=changes)
        log.info("split DNS set for %s", ", ".join(sorted(changes)))
        return True
