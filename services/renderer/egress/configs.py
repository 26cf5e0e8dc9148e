"""The tailscaled config file (`ipn.ConfigVAlpha`) of a group's gateways.

Only fields tailscaled knows, with its own spellings (`acceptDNS` and friends are lower-case
in ipn.ConfigVAlpha's JSON tags). The AuthKey is a `file:` reference to the mounted Secret,
never a key. One config per group; the per-node `Hostname` differs only in that field
(`hostname_for`), which the node plan carries so the nodeagent writes it in.
Must not: do I/O.
"""

from __future__ import annotations

from typing import Any

from tailwire.services.renderer.egress import groups
from tailwire.shared.k8s import names

AUTHKEY_FILE = f"{names.AUTHKEY_MOUNT}/{names.AUTHKEY_SECRET_KEY}"


def tailscaled_config(group: groups.Group, *, hostname: str | None = None) -> dict[str, Any]:
    """The config; `hostname` defaults to the group's hostname prefix."""
    spec = group.spec
    assert spec is not None, "only valid groups have a config"
    config: dict[str, Any] = {
        "Version": "alpha0",
        "Locked": False,
        "AuthKey": f"file:{AUTHKEY_FILE}",
        "Enabled": True,
        "Hostname": hostname or group.hostname_prefix,
        "acceptDNS": spec.dns.accept_dns,
        "acceptRoutes": spec.accept_routes,
    }
    if spec.exit_node is not None and spec.exit_node.target:
        config["exitNode"] = spec.exit_node.target
        config["allowLANWhileUsingExitNode"] = spec.exit_node.allow_lan_access
    config["NetfilterMode"] = "off"
    return config


def hostname_for(group: groups.Group, *, node: str) -> str:
    return group.hostname(node=node)
