"""The keyminter's own settings (`TAILWIRE_KEYMINTER_*`), beside the shared
`TailscaleSettings` (`TAILWIRE_TAILSCALE_*`) of the default tailnet.

This module must not connect to anything; `app.py` reads it once at start.
"""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from tailwire.shared import settings

NINETY_DAYS = 90 * 24 * 3600


class KeyminterSettings(BaseSettings):
    """Renewal, retries and rate limits of the keyminter."""

    model_config = SettingsConfigDict(
        env_prefix=f"{settings.PREFIX}KEYMINTER_", extra="ignore", frozen=True
    )

    # Renew once this share of a key's lifetime has passed (0.8: at 72 of 90 days).
    renewal_fraction: float = Field(default=0.8, gt=0.0, lt=1.0)
    # Lifetime asked for each key (the Tailscale API allows at most 90 days).
    key_expiry_seconds: int = Field(default=NINETY_DAYS, ge=3600, le=NINETY_DAYS)
    # How often the renewal pass looks for keys that are due (real seconds).
    renewal_check_seconds: float = Field(default=300.0, gt=0)
    # Backoff for 429/5xx: attempts within one message, first delay and cap (seconds).
    retry_attempts: int = Field(default=5, ge=1, le=20)
    backoff_base_seconds: float = Field(default=1.0, gt=0)
    backoff_cap_seconds: float = Field(default=60.0, gt=0)
    # Per-tailnet limit on control-API calls: average per second and burst.
    rate_per_second: float = Field(default=2.0, gt=0)
    rate_burst: int = Field(default=10, ge=1)
    # Requests handled at once (different owners; one owner's are serialised).
    workers: int = Field(default=8, ge=1, le=64)
    # How often every TailscaleTailnet's control API is checked (a new or changed one at once),
    # and how long an unchanged outcome goes without being published again (its
    # last_connected then advances; each publish is a status write by the renderer).
    tailnet_check_seconds: float = Field(default=300.0, gt=0)
    tailnet_heartbeat_seconds: float = Field(default=3600.0, gt=0)


class BusAuthSettings(BaseSettings):
    """Bus credentials for nodeagents (`TAILWIRE_BUS_AUTH_*`): the NATS auth callout.

    Off unless `issuer_seed` is set: the account nkey seed (`SA...`) whose public key the
    nats-server config names as the callout's issuer (`tailwire nats-config --auth-callout`).
    """

    model_config = SettingsConfigDict(
        env_prefix=f"{settings.PREFIX}BUS_AUTH_", extra="ignore", frozen=True
    )

    issuer_seed: SecretStr | None = None
    # The audience the nodeagent's projected ServiceAccount token is minted for.
    audience: str = "tailwire-nats"
    # The ServiceAccount whose tokens may connect as a nodeagent (in TAILWIRE_NAMESPACE).
    nodeagent_service_account: str = "tailwire-nodeagent"
