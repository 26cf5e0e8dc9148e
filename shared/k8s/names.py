"""Names and host paths both sides of an interface must agree on (renderer <-> nodeagent,
renderer <-> keyminter). Derived deterministically from the owner, never random."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

# Per-group gateway state and config on each node (a hostPath the gateway pod mounts and the
# nodeagent, with hostPID/hostNetwork, writes the config file into).
GATEWAY_STATE_ROOT = "/var/lib/tailwire/gateways"
GATEWAY_CONFIG_FILE = "tailscaled.json"
GATEWAY_SOCKET_FILE = "tailscaled.sock"
AUTHKEY_MOUNT = "/etc/tailwire/authkey"
AUTHKEY_SECRET_KEY = "authkey"  # noqa: S105 (the data key name, not a secret)
# What a gateway netns needs to forward for its members: set by the gateway pod's privileged
# init container (runtimes mount /proc/sys read-only in the non-privileged nodeagent), checked
# by the nodeagent.
GATEWAY_SYSCTLS: Mapping[str, str] = {
    "net.ipv4.ip_forward": "1",
    "net.ipv6.conf.all.forwarding": "1",
    "net.ipv4.conf.all.rp_filter": "0",
    "net.ipv4.conf.default.rp_filter": "0",
}


def _short(value: str, *, limit: int) -> str:
    """`value` if it fits, else a prefix plus a stable hash, so names stay DNS-valid."""
    if len(value) <= limit:
        return value
    digest = hashlib.sha256(value.encode()).hexdigest()[:8]
    return f"{value[: limit - 9].rstrip('-.')}-{digest}"


def gateway_workload(group: str) -> str:
    """DaemonSet (and ConfigMap) name of an EgressGroup's gateway."""
    return _short(f"tailwire-gw-{group}", limit=63)


def authkey_secret(group: str) -> str:
    return _short(f"tailwire-gw-{group}-authkey", limit=253)


def gateway_state_dir(*, group: str, tailnet: str, root: str = GATEWAY_STATE_ROOT) -> str:
    """Host directory of one group's gateway state, keyed by group and tailnet.

    `root` is the host's state root; the nodeagent's tests point it at a temp dir.
    """
    return f"{root.rstrip('/')}/{_short(tailnet, limit=63)}/{_short(group, limit=63)}"


def gateway_hostname(*, group: str, node: str, cluster: str = "") -> str:
    """The per-node tailnet hostname of a group's gateway (revocation finds them by prefix)."""
    return _short(f"{hostname_prefix(group, cluster=cluster)}-{node.split('.')[0]}", limit=63)


def hostname_prefix(group: str, *, cluster: str = "") -> str:
    """`tailwire-<group>`, or `tailwire-<cluster>-<group>` when the cluster is named.

    Revocation removes the devices whose hostname starts with the prefix (and carry the
    group's tags), so clusters sharing a tailnet need distinct names: else deleting
    `payments` in one removes the gateways of `payments` in the others."""
    owner = f"{cluster}-{group}" if cluster else group
    return _short(f"tailwire-{owner}", limit=40)
