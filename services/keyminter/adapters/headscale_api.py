"""Headscale `/api/v1` client behind the same `Backend` interface as Tailscale's.

Pre-auth keys with `aclTags` (`POST /api/v1/preauthkey`), expiry and deletion, nodes
listed and deleted; a Bearer API key authenticates. Takes an injected `httpx.AsyncClient`
whose base URL is the Headscale server. It must not retry on its own, log a request, or put
the API key or a pre-auth key in any message.
"""

from __future__ import annotations

import contextlib
import datetime
import urllib.parse
from typing import Any

import httpx
from pydantic import SecretStr

from tailwire.services.keyminter import domain
from tailwire.services.keyminter.adapters import backends, timing
from tailwire.shared import errors, httperrors


class HeadscaleClient:
    """One Headscale server. `user` is a numeric user id, or None for tags-only keys
    (Headscale 0.28 puts tagged nodes under its `tagged-devices` user either way)."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        api_key: SecretStr,
        user: str | None,
        clock: timing.Clock,
        name: str,
    ) -> None:
        self._http = http
        self._api_key = api_key
        self._user = user if user and user.isdigit() else None
        self._clock = clock
        self.name = name

    async def _request(
        self,
        method: str,
        path: str,
        *,
        what: str,
        json: Any = None,
        params: dict[str, str] | None = None,
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self._api_key.get_secret_value()}"}
        response = await httperrors.send(
            self._http, method, path, what=what, json=json, params=params, headers=headers
        )
        httperrors.check_response(response, what=what, now=self._clock.now())
        return response

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
        del preauthorized, description  # Headscale keys are always preauthorized, unnamed
        expiration = self._clock.now() + datetime.timedelta(seconds=expiry_seconds)
        body: dict[str, Any] = {
            "reusable": reusable,
            "ephemeral": ephemeral,
            "expiration": expiration.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "aclTags": list(tags),
        }
        if self._user is not None:
            body["user"] = self._user
        response = await self._request(
            "POST", "/api/v1/preauthkey", what="create pre-auth key", json=body
        )
        try:
            data = response.json()["preAuthKey"]
            return backends.MintedKey(
                key_id=str(data["id"]),
                secret=SecretStr(str(data["key"])),
                expires_at=_parse_time(str(data["expiration"])),
            )
        except (ValueError, KeyError, TypeError):
            raise errors.PermanentBackendError("create pre-auth key: malformed response") from None

    async def delete_key(self, key_id: str) -> None:
        what = f"expire pre-auth key {key_id}"
        try:
            await self._request("POST", "/api/v1/preauthkey/expire", what=what, json={"id": key_id})
        except errors.NotFound:
            return
        # Headscale keeps a key a node registered with (400): expired is as good as deleted.
        with contextlib.suppress(errors.NotFound, errors.PermanentBackendError):
            await self._request("DELETE", "/api/v1/preauthkey", what=what, params={"id": key_id})

    async def list_keys(self) -> list[domain.KeyInfo]:
        # Headscale keys carry no description, so no marker: nothing to recognise as ours.
        return []

    async def list_devices(self) -> list[domain.Device]:
        response = await self._request("GET", "/api/v1/node", what="list nodes")
        nodes = response.json().get("nodes") or []
        return [
            domain.Device(
                id=str(n.get("id")),
                hostname=str(n.get("name") or ""),
                # `tags` since Headscale 0.28; forcedTags/validTags before it.
                tags=tuple(
                    str(t)
                    for t in (n.get("tags") or [])
                    + (n.get("forcedTags") or [])
                    + (n.get("validTags") or [])
                ),
            )
            for n in nodes
            if isinstance(n, dict)
        ]

    async def delete_device(self, device_id: str) -> None:
        path = f"/api/v1/node/{urllib.parse.quote(device_id, safe='')}"
        with contextlib.suppress(errors.NotFound):
            await self._request("DELETE", path, what=f"delete node {device_id}")


def _parse_time(text: str) -> datetime.datetime:
    moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError("timestamp without offset")
    return moment.astimezone(datetime.UTC)
