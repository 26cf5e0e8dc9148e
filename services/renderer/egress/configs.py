"""The tailscaled config file (`ipn.ConfigVAlpha`) of a group's gateways.

Only fields tailscaled knows, with its own spellings (`acceptDNS` and friends are lower-case
in ipn.ConfigVAlpha's JSON tags): tailscaled refuses a file with an unknown field. The
AuthKey is a `file:` reference to the mounted Secret, never a key. `ServerURL` is the
tailnet's coordination server (Headscale's URL; absent for Tailscale's own).

One config per group, published on the bus; the nodeagent makes each node's copy of it
(its `domain.gatewayfile`): the per-node `Hostname` (`hostname_for`, carried by the node plan)
and the `exitNode` resolved against the gateway's peers, because tailscaled reads a non-IP
`exitNode` as a StableNodeID and a MagicDNS name would never match. A reload applies only the
fields present, so `exitNode` is always written: `""` clears a removed exit node.
Must not: do I/O.
"""

from __future__ import annotations

from typing import Any

from tailwire.services.renderer.egress import groups
from tailwire.shared.k8s import names

AUTHKEY_FILE = f"{names.AUTHKEY_MOUNT}/{names.AUTHKEY_SECRET_KEY}"


def tailscaled_config(
    group: groups.Group, *, hostname: str | None = None, server_url: str | None = None
) -> dict[str, Any]:
    """The config; `hostname` defaults to the group's hostname prefix."""
    spec = group.spec
    assert spec is not None, "only valid groups have a config"
    config: dict[str, Any] = {
        "Version": "alpha0",
        "Locked": False,
        "AuthKey": f"file:{AUTHKEY_FILE}",
        **({"ServerURL": server_url} if server_url else {}),
        "Enabled": True,
        "Hostname": hostname or group.hostname_prefix,
        "acceptDNS": spec.dns.accept_dns,
        "acceptRoutes": spec.accept_routes,
    }
    if spec.exit_node is not None and spec.exit_node.target:
        config["exitNode"] = spec.exit_node.target
        config["allowLANWhileUsingExitNode"] = spec.exit_node.allow_lan_access
    else:
        config["exitNode"] = ""  # present, so a reload clears an exit node that was removed
        config["allowLANWhileUsingExitNode"] = False
    config["NetfilterMode"] = "off"
    return config


def hostname_for(group: groups.Group, *, node: str) -> str:
    return group.hostname(node=node)
