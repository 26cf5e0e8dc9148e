"""Tailscale split DNS through the control-API fake: set once, repaired, never rewritten."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import SecretStr

from tailwire.services.dnsupdater import config
from tailwire.shared import errors, settings
from tailwire.testing import controlapi

from .conftest import ManualTicker, settle, until


def _settings() -> config.DnsUpdaterSettings:
    return config.DnsUpdaterSettings.model_validate(
        {
            "zones": [
                {"zone": "sudhanva.me", "backends": ["tailscale"], "nameservers": ["100.100.1.53"]}
            ]
        }
    )


async def test_zone_points_at_the_resolver_and_drift_is_repaired(
    control_api: controlapi.FakeControlAPI, start_dnsupdater: Any, ticker: ManualTicker
) -> None:
    oauth = control_api.add_oauth_client(scopes=["dns"])
    tailscale = settings.TailscaleSettings(
        tailscale_api_url=control_api.url,
        tailscale_oauth_client_id=oauth.client_id,
        tailscale_oauth_client_secret=SecretStr(oauth.client_secret),
    )
    control_api.split_dns["other.example"] = ["1.1.1.1"]
    async with start_dnsupdater(dns_settings=_settings(), tailscale_settings=tailscale) as wired:
        await until(wired, lambda: "sudhanva.me" in control_api.split_dns)
        assert control_api.split_dns == {
            "sudhanva.me": ["100.100.1.53"],
            "other.example": ["1.1.1.1"],
        }
        patches = len(control_api.requests.matching(method="PATCH"))
        ticker.fire()
        await settle(wired)
        assert len(control_api.requests.matching(method="PATCH")) == patches

        control_api.split_dns.pop("sudhanva.me")  # removed by hand in the admin console
        ticker.fire()
        await settle(wired)
        assert control_api.split_dns["sudhanva.me"] == ["100.100.1.53"]
        # One token for all of it.
        assert len(control_api.requests.matching(method="POST", route="*/oauth/token")) == 1


async def test_missing_credentials_are_a_clear_configuration_error(
    start_dnsupdater: Any,
) -> None:
    with pytest.raises(errors.ConfigurationError, match="tailscale_oauth_client_id"):
        async with start_dnsupdater(
            dns_settings=_settings(), tailscale_settings=settings.TailscaleSettings()
        ):
            pass
