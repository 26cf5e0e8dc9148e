"""A node's copy of its group's tailscaled config: this node's hostname, the exit node resolved.

The renderer publishes one config per group. Two fields differ per node and per moment:
- `Hostname`: each node's gateway is its own device (`<prefix>-<node>`, from the node plan);
  written unchanged, every node would register under the group's name and the control plane
  would rename them `-1`, `-2`.
- `exitNode`: the group names its exit node by MagicDNS name, IP or StableNodeID, but
  tailscaled (ipn.ConfigVAlpha.ToPrefs) reads any non-IP string as a StableNodeID, so a name
  never matches and members' default route would go nowhere. The gateway's own peers (its
  LocalAPI status) say which device the name means; the file gets that device's StableNodeID,
  or `""` (no exit node, which also clears one) when there is none, with the reason.
The same status says which subnet routes the gateway accepted (`accepted_routes`): the ack
carries them so the renderer routes members there too (acceptRoutes reaches the members).
Pure: the status comes in as data.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Mapping, Sequence
from typing import Any

NOT_RUNNING = "GatewayNotRunning"
NOT_FOUND = "ExitNodeNotFound"
AMBIGUOUS = "ExitNodeAmbiguous"
NOT_OFFERED = "ExitNodeNotOffered"


@dataclasses.dataclass(frozen=True, kw_only=True)
class Peer:
    stable_id: str
    hostname: str
    dns_name: str  # the MagicDNS FQDN, without the trailing dot
    ips: tuple[str, ...]
    exit_node_option: bool
    primary_routes: tuple[str, ...] = ()  # the subnets this peer routes for the tailnet


@dataclasses.dataclass(frozen=True, kw_only=True)
class ExitNode:
    """What `target` (the group's `exitNode`) resolved to on this gateway."""

    target: str
    stable_id: str = ""
    name: str = ""  # the peer's MagicDNS name (or host name) when resolved
    ip: str = ""
    reason: str = ""  # "" when resolved and usable, else one of the reasons above
    message: str = ""

    @property
    def wanted(self) -> bool:
        return bool(self.target)

    def describe(self) -> str:
        """For status: `exit-fra1.your-org.ts.net (100.64.0.3, id 7)`."""
        if not self.stable_id:
            return ""
        return f"{self.name or self.stable_id} ({self.ip}, id {self.stable_id})"


def peers_from_status(status: Mapping[str, Any]) -> tuple[Peer, ...]:
    """The peers of a LocalAPI `/status` answer (`Peer` keyed by node key)."""
    found = []
    for raw in (status.get("Peer") or {}).values():
        if not isinstance(raw, Mapping):
            continue
        found.append(
            Peer(
                stable_id=str(raw.get("ID") or ""),
                hostname=str(raw.get("HostName") or ""),
                dns_name=str(raw.get("DNSName") or "").rstrip("."),
                ips=tuple(str(ip) for ip in raw.get("TailscaleIPs") or ()),
                exit_node_option=bool(raw.get("ExitNodeOption")),
                primary_routes=tuple(str(r) for r in raw.get("PrimaryRoutes") or ()),
            )
        )
    return tuple(sorted(found, key=lambda p: p.stable_id))


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _matches(target: str, peer: Peer) -> bool:
    wanted = target.rstrip(".").lower()
    if _is_ip(wanted):
        return any(ipaddress.ip_address(ip) == ipaddress.ip_address(wanted) for ip in peer.ips)
    dns = peer.dns_name.lower()
    return wanted in (peer.stable_id.lower(), dns, dns.split(".", 1)[0], peer.hostname.lower())


def resolve_exit_node(target: str, peers: Sequence[Peer] | None) -> ExitNode:
    """Resolve `target` against the gateway's peers; `peers` None: the gateway is not running."""
    if not target:
        return ExitNode(target="")
    if peers is None:
        return ExitNode(
            target=target,
            reason=NOT_RUNNING,
            message=f"exit node {target!r}: the gateway's tailscaled is not running yet",
        )
    matches = [p for p in peers if _matches(target, p)]
    if not matches:
        return ExitNode(
            target=target,
            reason=NOT_FOUND,
            message=f"exit node {target!r} is not a device this gateway sees on its tailnet",
        )
    if len(matches) > 1:
        names = ", ".join(p.dns_name or p.stable_id for p in matches)
        return ExitNode(
            target=target,
            reason=AMBIGUOUS,
            message=f"exit node {target!r} matches several devices ({names}); name one by FQDN",
        )
    peer = matches[0]
    v4 = [ip for ip in peer.ips if ipaddress.ip_address(ip).version == 4]
    found = ExitNode(
        target=target,
        stable_id=peer.stable_id,
        name=peer.dns_name or peer.hostname,
        ip=(v4 or list(peer.ips) or [""])[0],
    )
    if not peer.exit_node_option:
        return dataclasses.replace(
            found,
            reason=NOT_OFFERED,
            message=(
                f"exit node {target!r} ({found.name}) does not offer itself as an exit node: "
                "it must advertise it and the control plane must approve 0.0.0.0/0 and ::/0"
            ),
        )
    return found


def accepted_routes(config: Mapping[str, Any], peers: Sequence[Peer] | None) -> tuple[str, ...]:
    """The subnets the gateway takes from its peers when the config accepts routes (tailscaled
    routes them into tailscale0), sorted; the exit node's default routes are not subnets."""
    if peers is None or config.get("acceptRoutes") is not True:
        return ()
    found: set[str] = set()
    for peer in peers:
        for route in peer.primary_routes:
            try:
                network = ipaddress.ip_network(route, strict=False)
            except ValueError:
                continue
            if network.prefixlen > 0:
                found.add(str(network))
    return tuple(sorted(found, key=lambda r: (ipaddress.ip_network(r).version, r)))


def localize(
    config: Mapping[str, Any], *, hostname: str | None, exit_node: ExitNode
) -> dict[str, Any]:
    """This node's file: its hostname, and `exitNode` as a StableNodeID tailscaled accepts."""
    local = dict(config)
    if hostname:
        local["Hostname"] = hostname
    if "exitNode" in local or exit_node.wanted:
        local["exitNode"] = exit_node.stable_id
    return local
