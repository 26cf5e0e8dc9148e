"""Process settings from `TAILWIRE_*` environment variables (pydantic-settings).

One settings class per concern, so a service reads only what it uses; each service's `app.py`
composes the ones it needs. Secrets are `SecretStr` so they never print. This module must
not connect to anything.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated

import pydantic
from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PREFIX = "TAILWIRE_"


class _Base(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=PREFIX, extra="ignore", frozen=True)


def describe_error(exc: pydantic.ValidationError) -> str:
    """`TAILWIRE_<FIELD>: reason; ...` for settings read from the environment: names the
    variable to fix, with the validator's own words."""
    parts = []
    for error in exc.errors(include_url=False):
        field = str(error["loc"][0]) if error["loc"] else ""
        reason = str((error.get("ctx") or {}).get("error", error["msg"]))
        reason = reason.removeprefix(f"{field}: ")
        parts.append(f"{PREFIX}{field.upper()}: {reason}" if field else reason)
    return "; ".join(parts) or str(exc)


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class BusSettings(_Base):
    """Where the NATS server is and who we are on it."""

    nats_url: str = "nats://127.0.0.1:4222"
    nats_user: str | None = None
    nats_password: SecretStr | None = None
    nats_creds_file: str | None = None
    # A token file read at every (re)connect: a nodeagent's projected ServiceAccount token,
    # which nats-server's auth callout has the keyminter review (see docs/operations.md).
    nats_token_file: str | None = None
    # TLS to nats-server: used when the URL is tls://... or this CA bundle (PEM) is set; the
    # server's certificate must then chain to it and name the URL's host. Without it, a
    # tls:// URL is verified against the system's CAs.
    nats_tls_ca_file: str | None = None
    # Replicas of each JetStream stream: 1 for a single server, 3 for the HA overlay.
    stream_replicas: int = Field(default=1, ge=1, le=5)
    # How long Nats-Msg-Id deduplication remembers an id (seconds).
    duplicate_window: float = Field(default=120.0, gt=0)
    # How long a deletion (a tombstone snapshot, a deleted status summary) stays on its
    # subject before the stream forgets the subject (seconds): without it, every pod name
    # that ever existed would keep a subject in TAILWIRE_CLUSTER.
    tombstone_ttl: int = Field(default=86_400, ge=60)


class TelemetrySettings(_Base):
    """Tracing and logging. OTLP endpoints come from the standard `OTEL_*` variables."""

    service_name: str = "tailwire"
    # "auto" (OTLP when OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT is set, else none), "otlp",
    # "console", or "none".
    traces_exporter: str = "auto"
    log_level: str = "INFO"
    log_json: bool = True
    # /healthz, /readyz and /metrics; 0 picks a free port, None disables the server.
    health_port: int | None = Field(default=None, ge=0, le=65535)


class KubernetesSettings(_Base):
    """How to reach the Kubernetes API: in-cluster, else KUBECONFIG, as kubectl does."""

    kubeconfig: str | None = None
    # Namespace tailwire's own objects live in (Secrets, ConfigMaps, DaemonSets).
    namespace: str = "tailwire-system"
    # Empty means all namespaces.
    watch_namespaces: Annotated[list[str], NoDecode] = Field(default_factory=list)

    _split = field_validator("watch_namespaces", mode="before")(_split_csv)


_CLUSTER_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_CLUSTER_NAME_MAX = 20  # leaves room for the group and node in a 63-character hostname


class ClusterNetworkSettings(_Base):
    """The cluster's own address ranges, kept on the pods' primary interface."""

    cluster_cidrs: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["10.244.0.0/16", "10.96.0.0/12"]
    )
    # Link addresses for the member<->gateway veths (dual-stack), docs/architecture.md
    # Datapath. Never inside the tailnet's own ranges: tailscaled routes 100.64.0.0/10 and
    # fd7a:115c:a1e0::/48 into tailscale0 from table 52, ahead of main, so replies to a member
    # there would go back into the tailnet (and Tailscale gives devices addresses there).
    link_cidr_v4: str = "169.254.64.0/18"
    link_cidr_v6: str = "fd74:7769:7265::/80"
    exit_node_table: int = Field(default=7717, ge=1, le=2**31 - 1)
    # Part of every gateway's tailnet hostname (`tailwire-<cluster>-<group>-<node>`): set a
    # distinct one in each cluster that shares a tailnet (names.hostname_prefix says why).
    cluster_name: str = ""

    _split = field_validator("cluster_cidrs", mode="before")(_split_csv)

    @field_validator("cluster_name")
    @classmethod
    def _cluster_name_label(cls, value: str) -> str:
        if value and not (len(value) <= _CLUSTER_NAME_MAX and _CLUSTER_NAME.match(value)):
            raise ValueError(
                f"cluster_name: {value!r} is not a lower-case DNS label of at most "
                f"{_CLUSTER_NAME_MAX} characters (a-z, 0-9 and '-', not at either end)"
            )
        return value

    @field_validator("link_cidr_v4", "link_cidr_v6")
    @classmethod
    def _link_outside_tailnet(cls, value: str, info: ValidationInfo) -> str:
        try:
            network = ipaddress.ip_network(value, strict=True)
        except ValueError as exc:
            raise ValueError(f"{info.field_name}: {value!r} is not a network: {exc}") from exc
        for tailnet_range in ("100.64.0.0/10", "fd7a:115c:a1e0::/48"):
            other = ipaddress.ip_network(tailnet_range)
            if network.version == other.version and network.overlaps(other):
                raise ValueError(
                    f"{info.field_name}: {value} overlaps the tailnet range {tailnet_range}, "
                    "which tailscaled routes into tailscale0 ahead of the members' links"
                )
        return value

    @field_validator("cluster_cidrs")
    @classmethod
    def _cidrs_parse(cls, value: list[str]) -> list[str]:
        for cidr in value:
            try:
                ipaddress.ip_network(cidr, strict=True)
            except ValueError as exc:
                raise ValueError(f"cluster_cidrs: {cidr!r} is not a network: {exc}") from exc
        return value


# The tailscale release the tests run against (tests/realpeers): the gateways' default image.
DEFAULT_GATEWAY_IMAGE = "ghcr.io/tailscale/tailscale:v1.102.5"
# [registry[:port]/]path[:tag][@digest], as the container runtimes parse an image reference.
_IMAGE = re.compile(
    r"^(?:[a-zA-Z0-9](?:[a-zA-Z0-9.-]*[a-zA-Z0-9])?(?::[0-9]+)?/)?"
    r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
    r"(?::[a-zA-Z0-9_][a-zA-Z0-9_.-]{0,127})?(?:@sha256:[0-9a-f]{64})?$"
)


class GatewaySettings(_Base):
    """The egress gateway pods the renderer deploys (one DaemonSet per group)."""

    # The image of every container of a gateway pod (tailscaled and its init containers): a
    # registry mirror, a pinned digest or another release. The default is the tested one.
    gateway_image: str = DEFAULT_GATEWAY_IMAGE

    @field_validator("gateway_image")
    @classmethod
    def _image_reference(cls, value: str) -> str:
        if not _IMAGE.match(value):
            raise ValueError(
                f"gateway_image: {value!r} is not an image reference "
                "([registry/]repository[:tag][@sha256:digest], e.g. "
                f"{DEFAULT_GATEWAY_IMAGE})"
            )
        return value


class NodeSettings(_Base):
    """Who this nodeagent is (set from the downward API in the DaemonSet)."""

    node_name: str = ""
    # Host directory holding each gateway's config file and LocalAPI socket
    # (tailwire.shared.k8s.names.GATEWAY_STATE_ROOT in a deployment; a temp dir in tests).
    gateway_state_root: str = "/var/lib/tailwire/gateways"
    # Where pod network namespaces are searched by UID (`/proc/*/cgroup`, needs hostPID).
    proc_root: str = "/proc"
    # The gateway netns's forwarding and rp_filter are set by the gateway pod's privileged
    # init container; the nodeagent, whose /proc/sys the runtime mounts read-only, checks
    # them. True makes it write them instead: only for gateways that no such pod prepared
    # (plain named netns) and an agent whose /proc/sys is writable.
    write_gateway_sysctls: bool = False


class TailscaleSettings(_Base):
    """The default tailnet's control API (a TailscaleTailnet resource may name others)."""

    tailscale_api_url: str = "https://api.tailscale.com"
    # The coordination server the default tailnet's gateways log in to; unset is Tailscale's.
    tailscale_control_url: str | None = None
    tailscale_tailnet: str = "-"
    tailscale_oauth_client_id: str | None = None
    tailscale_oauth_client_secret: SecretStr | None = None


class LeadershipSettings(_Base):
    """Leader election between replicas of a central service (the HA overlay turns it on)."""

    leader_election: bool = False
    # This replica's identity in the Lease (the downward API's pod name in a deployment);
    # empty means `<hostname>-<pid>`.
    pod_name: str = ""
    # client-go's durations, in seconds: a killed leader is replaced within ~lease_duration.
    lease_duration: float = Field(default=10.0, gt=0)
    lease_renew_deadline: float = Field(default=7.0, gt=0)
    lease_retry_period: float = Field(default=2.0, gt=0)
