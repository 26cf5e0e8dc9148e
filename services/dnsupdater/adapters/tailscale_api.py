"""Tailscale split DNS through the control API: point a zone at the tailnet resolver.

Deliberately minimal: `GET`/`PATCH /api/v2/tailnet/{tailnet}/dns/split-dns`, authenticated
as an OAuth client by `shared.tailscaleauth` (the keyminter's session too), whose errors are
the project's exceptions. The client secret and the token never reach a log or an error.
"""

from __future__ import annotations

import logging
import urllib.parse
from collections.abc import Sequence

import httpx
from pydantic import SecretStr

from tailwire.shared import tailscaleauth

log = logging.getLogger(__name__)


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
    ) -> None:
        self.tailnet = tailnet
        self.zones = tuple(zones)
        self._session = tailscaleauth.OAuthSession(
            http, client_id=client_id, client_secret=client_secret
        )
        self._path = f"/api/v2/tailnet/{urllib.parse.quote(tailnet, safe='')}/dns/split-dns"

    async def _call(self, method: str, *, json: object = None) -> dict[str, list[str]]:
        response = await self._session.request(
            method, self._path, what=f"tailscale split-dns {method}", json=json
        )
        return {str(k): [str(s) for s in v or ()] for k, v in response.json().items()}

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
