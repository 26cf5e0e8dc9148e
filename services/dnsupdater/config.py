"""The dnsupdater's settings, from `TAILWIRE_DNS_*` environment variables.

`TAILWIRE_DNS_ZONES` is a JSON list of zones, each with its backends:
`[{"zone": "example.com", "backends": ["rfc2136", "coredns"], "server": "10.0.0.53"}]`.
The TSIG secret comes from `TAILWIRE_DNS_TSIG_SECRET` or the file named by
`TAILWIRE_DNS_TSIG_SECRET_FILE`; it is a `SecretStr` and never logged. This module must not
connect to anything.
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from tailwire.services.dnsupdater.domain import exposures, externaldns
from tailwire.shared import errors, settings


class Backend(enum.StrEnum):
    RFC2136 = "rfc2136"
    COREDNS = "coredns"
    TAILSCALE = "tailscale"


class ZoneConfig(BaseModel):
    """One zone and where its records go."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    zone: str = Field(min_length=1)
    backends: tuple[Backend, ...] = (Backend.RFC2136,)
    ttl: int = Field(default=60, ge=1, le=86400)
    # RFC 2136: the authoritative server (defaults to the settings' rfc2136_server/port).
    server: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    # Tailscale split DNS: the resolvers tailnet clients ask for this zone.
    nameservers: tuple[str, ...] = ()
    # Whether a route may take the zone's apex (`example.com` itself in zone example.com).
    apex: bool = False

    @field_validator("zone")
    @classmethod
    def _zone_name(cls, value: str) -> str:
        zone = exposures.normalize_hostname(value)
        if not zone or " " in zone or ".." in zone:
            raise ValueError(f"zone: {value!r} is not a DNS name")
        return zone

    @model_validator(mode="after")
    def _split_dns_needs_nameservers(self) -> ZoneConfig:
        if Backend.TAILSCALE in self.backends and not self.nameservers:
            raise ValueError(f"zone {self.zone}: backend tailscale needs nameservers")
        return self


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def _namespaced(value: str | None, *, field: str) -> tuple[str, str] | None:
    if not value:
        return None
    namespace, _, name = value.partition("/")
    if not namespace or not name:
        raise ValueError(f"{field}: expected <namespace>/<name>, got {value!r}")
    return namespace, name


class DnsUpdaterSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=settings.PREFIX + "DNS_", extra="ignore", frozen=True
    )

    zones: tuple[ZoneConfig, ...] = ()
    rfc2136_server: str = "127.0.0.1"
    rfc2136_port: int = Field(default=53, ge=1, le=65535)
    tsig_key_name: str | None = None
    tsig_algorithm: str = "hmac-sha256"
    tsig_secret: SecretStr | None = None
    tsig_secret_file: Path | None = None
    timeout: float = Field(default=5.0, gt=0)
    # The tailnet resolver's ConfigMap (backend coredns), `<namespace>/<name>`.
    resolver_configmap: str = "tailwire-system/tailwire-dns"
    resolver_mount_path: str = "/etc/coredns"
    # In-cluster rewrite: the user's CoreDNS ConfigMap and the gateway-internal Service.
    coredns_configmap: str | None = None
    gateway_internal_service: str | None = None
    cluster_domain: str = "cluster.local"
    # ExternalDNS annotations on HTTPRoutes and Gateways.
    external_dns: bool = False
    annotation_prefix: str = externaldns.DEFAULT_PREFIX
    split_horizon_hostnames: Annotated[tuple[str, ...], NoDecode] = ()
    # Drift repair: how often actual state is read back and corrected (seconds).
    repair_interval: float = Field(default=300.0, gt=0)

    _split = field_validator("split_horizon_hostnames", mode="before")(_split_csv)

    @field_validator("annotation_prefix")
    @classmethod
    def _prefix_ends_with_slash(cls, value: str) -> str:
        if not value.endswith("/"):
            raise ValueError(f"annotation_prefix: {value!r} must end with '/'")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> DnsUpdaterSettings:
        seen: set[str] = set()
        for zone in self.zones:
            if zone.zone in seen:
                raise ValueError(f"zones: {zone.zone} is configured twice")
            seen.add(zone.zone)
        if any(Backend.RFC2136 in z.backends for z in self.zones) and not self.tsig_key_name:
            raise ValueError("tsig_key_name: required when a zone uses the rfc2136 backend")
        if bool(self.coredns_configmap) != bool(self.gateway_internal_service):
            raise ValueError(
                "coredns_configmap and gateway_internal_service: set both for the in-cluster "
                "rewrite, or neither"
            )
        _namespaced(self.resolver_configmap, field="resolver_configmap")
        _namespaced(self.coredns_configmap, field="coredns_configmap")
        _namespaced(self.gateway_internal_service, field="gateway_internal_service")
        return self

    # --- derived --------------------------------------------------------------------------

    def zones_with(self, backend: Backend) -> tuple[ZoneConfig, ...]:
        return tuple(z for z in self.zones if backend in z.backends)

    @property
    def idle(self) -> bool:
        """Nothing to do: no zone and no annotation management."""
        return not self.zones and not self.external_dns

    @property
    def needs_kubernetes(self) -> bool:
        return bool(self.external_dns or self.coredns_configmap or self.zones_with(Backend.COREDNS))

    def resolver_ref(self) -> tuple[str, str]:
        ref = _namespaced(self.resolver_configmap, field="resolver_configmap")
        assert ref is not None  # validated non-empty
        return ref

    def coredns_ref(self) -> tuple[str, str] | None:
        return _namespaced(self.coredns_configmap, field="coredns_configmap")

    def internal_service_ref(self) -> tuple[str, str] | None:
        return _namespaced(self.gateway_internal_service, field="gateway_internal_service")

    def tsig_secret_value(self) -> str:
        """The TSIG secret (base64) from the env var or the file; never log it."""
        if self.tsig_secret is not None:
            return self.tsig_secret.get_secret_value().strip()
        if self.tsig_secret_file is not None:
            try:
                return self.tsig_secret_file.read_text().strip()
            except OSError as exc:
                raise errors.ConfigurationError(
                    f"tsig_secret_file: cannot read {self.tsig_secret_file}: {exc.strerror}"
                ) from exc
        raise errors.ConfigurationError(
            "tsig_secret: set TAILWIRE_DNS_TSIG_SECRET or TAILWIRE_DNS_TSIG_SECRET_FILE"
        )
