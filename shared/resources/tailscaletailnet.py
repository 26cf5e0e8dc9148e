"""`TailscaleTailnet` (gateway.tailscale.com/v1alpha1, cluster-scoped): one tailnet's control
API and the Secret holding its credentials. Never holds a credential itself."""

from __future__ import annotations

import ipaddress
import urllib.parse
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from tailwire.shared import errors
from tailwire.shared.resources import common, egressgroup

GROUP = "gateway.tailscale.com"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "TailscaleTailnet"
PLURAL = "tailscaletailnets"
SINGULAR = "tailscaletailnet"
SHORT_NAMES = ("tstailnet",)
# On a credentials Secret: the TailscaleTailnets that may use it (comma-separated names).
SECRET_TAILNETS_ANNOTATION = "tailwire.dev/tailnets"  # noqa: S105 (an annotation key)
SCOPE = "Cluster"


class HeadscaleConfig(common.Spec):
    # The Headscale user that owns minted pre-auth keys.
    user: str = Field(min_length=1)


class TailscaleTailnetSpec(common.Spec):
    # The tailnet name for the API path (`-` is the OAuth client's own tailnet).
    tailnet: str = "-"
    backend: Literal["tailscale", "headscale"] = "tailscale"
    api_url: str = Field(default="https://api.tailscale.com", alias="apiURL")
    # The coordination server the gateways' tailscaled logs in to (`ServerURL` in its config).
    # Unset: Tailscale's own for `backend: tailscale`, `apiURL` for `backend: headscale`
    # (Headscale serves its API and the control protocol at one URL).
    control_url: str | None = Field(default=None, alias="controlURL")
    # Secret with `client_id`/`client_secret` (Tailscale OAuth) or `api_key` (Headscale).
    oauth_secret_name: str = Field(min_length=1)
    oauth_secret_namespace: str | None = None
    # Tags devices of this tailnet get unless a resource names its own.
    tags: list[egressgroup.Tag] = Field(default_factory=lambda: list(egressgroup.DEFAULT_TAGS))
    headscale: HeadscaleConfig | None = None


class TailnetInfo(common.Spec):
    name: str
    magic_dns_suffix: str | None = Field(default=None, alias="magicDNSSuffix")
    organization: str | None = None


class TailscaleTailnetStatus(common.Spec):
    conditions: list[common.Condition] = Field(default_factory=list)
    tailnet_info: TailnetInfo | None = None
    # When tailwire last found the control API accepting the credentials (RFC 3339).
    last_connected: str | None = None
    observed_generation: int | None = None


class TailscaleTailnet(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid", frozen=True)

    api_version: Literal["gateway.tailscale.com/v1alpha1"] = Field(alias="apiVersion")
    kind: Literal["TailscaleTailnet"]
    metadata: common.ObjectMeta
    spec: TailscaleTailnetSpec
    status: TailscaleTailnetStatus | None = None


def check(tailnet: TailscaleTailnet) -> list[errors.Problem]:
    problems: list[errors.Problem] = []
    spec = tailnet.spec
    if spec.backend == "headscale" and spec.headscale is None:
        problems.append(
            errors.Problem(
                field="spec.headscale.user", message="required when backend is headscale"
            )
        )
    if not spec.api_url.startswith(("https://", "http://")):
        problems.append(errors.Problem(field="spec.apiURL", message="must be an http(s) URL"))
    elif spec.api_url.startswith("http://") and not _loopback(spec.api_url):
        problems.append(
            errors.Problem(
                field="spec.apiURL",
                message="must be https:// (the credentials travel to it); plain http:// only "
                "to a loopback address",
            )
        )
    if spec.control_url is not None and not spec.control_url.startswith(("https://", "http://")):
        problems.append(errors.Problem(field="spec.controlURL", message="must be an http(s) URL"))
    return problems


def _loopback(url: str) -> bool:
    host = urllib.parse.urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def secret_tailnets(annotations: Mapping[str, str]) -> frozenset[str]:
    """The TailscaleTailnets a credentials Secret's annotation lets use it."""
    listed = annotations.get(SECRET_TAILNETS_ANNOTATION, "")
    return frozenset(n.strip() for n in listed.split(",") if n.strip())


def control_url(spec: TailscaleTailnetSpec) -> str | None:
    """The URL tailscaled logs in to for this tailnet; None is Tailscale's own."""
    if spec.control_url:
        return spec.control_url
    return spec.api_url if spec.backend == "headscale" else None
