"""The Tailscale client's split-DNS calls against the control-API fake."""

from __future__ import annotations

import pydantic

from tailwire.services.keyminter.adapters import tailscale_api
from tailwire.testing import controlapi

from .conftest import http_factory


async def test_split_dns_is_read_and_merged(
    control_api: controlapi.FakeControlAPI, clock: controlapi.FakeClock
) -> None:
    oauth = control_api.add_oauth_client(scopes=["dns"])
    async with http_factory(control_api.url) as http:
        api = tailscale_api.TailscaleClient(
            http,
            tailnet="-",
            client_id=oauth.client_id,
            client_secret=pydantic.SecretStr(oauth.client_secret),
            clock=clock,
        )
        assert await api.get_split_dns() == {}
        merged = await api.patch_split_dns({"example.com": ["100.100.1.1"]})
        assert merged == {"example.com": ["100.100.1.1"]}
        await api.patch_split_dns({"corp.example": ["100.100.1.2"], "example.com": None})
        assert await api.get_split_dns() == {"corp.example": ["100.100.1.2"]}
    # One token served every call.
    assert len(control_api.requests.matching(route="/api/v2/oauth/token")) == 1
