"""What the egress computation depends on besides the cluster: address ranges and names.

Built from settings by `app.py` and from flags by `tailwire render`; must not read the
environment itself.
"""

from __future__ import annotations

import dataclasses

from tailwire.shared import settings
from tailwire.shared.events import nodes

# The tested tailscale release; `TAILWIRE_GATEWAY_IMAGE` (settings.GatewaySettings) overrides it.
DEFAULT_GATEWAY_IMAGE = settings.DEFAULT_GATEWAY_IMAGE


@dataclasses.dataclass(frozen=True, kw_only=True)
class Options:
    gateway_namespace: str = "tailwire-system"
    cluster_cidrs: tuple[str, ...] = ("10.244.0.0/16", "10.96.0.0/12")
    link_cidr_v4: str = "169.254.64.0/18"
    link_cidr_v6: str = "fd74:7769:7265::/80"
    exit_node_table: int = nodes.DEFAULT_EXIT_NODE_TABLE
    mtu: int = nodes.DEFAULT_MTU
    gateway_image: str = DEFAULT_GATEWAY_IMAGE
    # Names the gateways' tailnet hostnames apart from other clusters' (settings.cluster_name).
    cluster_name: str = ""
    # The default tailnet's coordination server (`ServerURL`); None is Tailscale's own.
    control_url: str | None = None
