"""Tailscale API v2 client: OAuth client credentials, auth keys, devices, split DNS.

Takes an injected `httpx.AsyncClient` (its base URL is the API, e.g.
`https://api.tailscale.com`), so tests point it at the local control-API fake over real
HTTP. Authentication (token cache on the injected clock, one retry on 401) is
`shared.tailscaleauth`, which the dnsupdater uses too. Errors leave as
`tailwire.shared.errors` (see `backends`). It must not retry on its own (callers wrap it in
`retrying`), log a request, or put a token, a client secret or a key in any message.
"""

from __future__ import annotations

import contextlib
import datetime
import urllib.parse

import httpx
from pydantic import SecretStr

from tailwire.services.keyminter import domain
from tailwire.services.keyminter.adapters import backends, timing
from tailwire.shared import errors, tailscaleauth


class TailscaleClient:
    """One tailnet of the Tailscale API v2, authenticated as an OAuth client."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        tailnet: str,
        client_id: str,
        client_secret: SecretStr,
        clock: timing.Clock,
        name: str | None = None,
    ) -> None:
        self._session = tailscaleauth.OAuthSession(
            http, client_id=client_id, client_secret=client_secret, now=clock.now
        )
        self._tailnet = urllib.parse.quote(tailnet, safe="")
        self.name = name or tailnet

    def _path(self, suffix: str) -> str:
        return f"/api/v2/tailnet/{self._tailnet}/{suffix}"

    # --- keys -----------------------------------------------------------------------------

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
        body = {
            "capabilities": {
                "devices": {
                    "create": {
                        "reusable": reusable,
                        "ephemeral": ephemeral,
                        "preauthorized": preauthorized,
                        "tags": list(tags),
                    }
                }
            },
            "expirySeconds": expiry_seconds,
            "description": description[: domain.MAX_DESCRIPTION],
        }
        response = await self._session.request(
            "POST", self._path("keys"), what="create key", json=body
        )
        try:
            data = response.json()
            return backends.MintedKey(
                key_id=str(data["id"]),
                secret=SecretStr(str(data["key"])),
                expires_at=_parse_time(str(data["expires"])),
            )
        except (ValueError, KeyError, TypeError):
            raise errors.PermanentBackendError("create key: malformed response") from None

    async def delete_key(self, key_id: str) -> None:
        path = self._path(f"keys/{urllib.parse.quote(key_id, safe='')}")
        with contextlib.suppress(errors.NotFound):  # already gone: what we wanted
            await self._session.request("DELETE", path, what=f"delete key {key_id}")

    async def list_keys(self) -> list[domain.KeyInfo]:
        response = await self._session.request("GET", self._path("keys"), what="list keys")
        keys = response.json().get("keys") or []
        return [
            domain.KeyInfo(
                id=str(k.get("id", "")),
                description=str(k.get("description") or ""),
                invalid=bool(k.get("invalid", False)),
            )
            for k in keys
            if isinstance(k, dict)
        ]

    # --- devices --------------------------------------------------------------------------

    async def list_devices(self) -> list[domain.Device]:
        response = await self._session.request(
            "GET", self._path("devices"), what="list devices", params={"fields": "all"}
        )
        devices = response.json().get("devices") or []
        return [
            domain.Device(
                id=str(d.get("nodeId") or d.get("id")),
                hostname=str(d.get("hostname") or ""),
                tags=tuple(str(t) for t in d.get("tags") or ()),
            )
            for d in devices
            if isinstance(d, dict)
        ]

    async def delete_device(self, device_id: str) -> None:
        path = f"/api/v2/device/{urllib.parse.quote(device_id, safe='')}"
        with contextlib.suppress(errors.NotFound):
            await self._session.request("DELETE", path, what=f"delete device {device_id}")

    # --- split DNS ------------------------------------------------------------------------

    async def get_split_dns(self) -> dict[str, list[str]]:
        response = await self._session.request(
            "GET", self._path("dns/split-dns"), what="get split DNS"
        )
        return {str(k): list(v or []) for k, v in response.json().items()}

    async def patch_split_dns(self, changes: dict[str, list[str] | None]) -> dict[str, list[str]]:
        """Merge `changes` (a None or empty list removes the domain); returns the result."""
        response = await self._session.request(
            "PATCH", self._path("dns/split-dns"), what="patch split DNS", json=changes
        )
        return {str(k): list(v or []) for k, v in response.json().items()}


def _parse_time(text: str) -> datetime.datetime:
    moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError("timestamp without offset")
    return moment.astimezone(datetime.UTC)
