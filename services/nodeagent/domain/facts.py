"""The datapath's vocabulary: the facts a namespace holds and the changes that write them.

Ownership is explicit: only routes and rules carrying protocol `PROTOCOL`, links named by
`gateway_link_name` with our alias, and `ts0` are ever changed, so a pod's own interfaces and
CNI routes are never touched. Pure values; no I/O.
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
from collections.abc import Mapping

from tailwire.shared.k8s import names

MEMBER_LINK = "ts0"
TAILNET_LINK = "tailscale0"
LINK_PREFIX = "tw"
ALIAS_PREFIX = "tailwire pod="
# rtnetlink protocol of every route and rule we own (`ip route ... proto 77`).
PROTOCOL = 77
MAIN_TABLE = 254
# In a gateway netns: replies to members (their link range) look up main, where each member's
# veth is, ahead of everything tailscaled adds (5210..5270). With an exit node and no LAN
# access tailscaled routes every local subnet, the members' links among them, into
# tailscale0 from table 52: without this rule a member's replies would go back to the tailnet.
MEMBER_LINKS_PRIORITY = 5190
GATEWAY_RULE_PRIORITY = 5200
# In a member netns with a dedicated table: replies to connections that came in on the pod's
# own interface (conntrack mark, `desiring.render_member_ruleset`) look up main first.
REPLY_RULE_PRIORITY = 5205
CARVE_OUT_PRIORITY = 5210
EXIT_RULE_PRIORITY = 5220
NFT_TABLE = "tailwire"
# The one bit of the conntrack and packet marks a member's table uses (others keep theirs).
REPLY_MARK = 0x10000000
# The gateway's sysctls as paths under /proc/sys (`net/ipv4/ip_forward`).
GATEWAY_SYSCTLS: Mapping[str, str] = {
    key.replace(".", "/"): value for key, value in names.GATEWAY_SYSCTLS.items()
}


def _net(cidr: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(cidr, strict=False)


def gateway_link_name(pod_uid: str) -> str:
    """The gateway-side end of a member's veth: stable per pod, 14 characters."""
    return LINK_PREFIX + hashlib.sha256(pod_uid.encode()).hexdigest()[:12]


def member_alias(*, pod_uid: str, netns: str | None) -> str:
    """Written on the gateway-side link so a restarted agent knows whose link it is."""
    return f"{ALIAS_PREFIX}{pod_uid} netns={netns or '-'}"


def parse_alias(alias: str | None) -> tuple[str, str | None] | None:
    """(pod UID, named netns or None) from an alias we wrote; None for anyone else's."""
    if not alias or not alias.startswith(ALIAS_PREFIX):
        return None
    uid, _, rest = alias[len(ALIAS_PREFIX) :].partition(" netns=")
    return uid, (None if rest in ("", "-") else rest)


# --- facts -----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, kw_only=True, order=True)
class Address:
    dev: str
    cidr: str

    def __str__(self) -> str:
        return f"{self.cidr} dev {self.dev}"


@dataclasses.dataclass(frozen=True, kw_only=True, order=True)
class Route:
    table: int
    dst: str
    dev: str
    gateway: str | None = None

    @property
    def family(self) -> int:
        return _net(self.dst).version

    def __str__(self) -> str:
        via = f" via {self.gateway}" if self.gateway else ""
        table = "" if self.table == MAIN_TABLE else f" table {self.table}"
        return f"{self.dst}{via} dev {self.dev}{table} proto {PROTOCOL}"


@dataclasses.dataclass(frozen=True, kw_only=True, order=True)
class Rule:
    family: int  # 4 or 6
    priority: int
    table: int
    dst: str | None = None
    fwmark: int | None = None
    fwmask: int | None = None  # None: the whole mark must equal `fwmark`

    def __str__(self) -> str:
        match = f" to {self.dst}" if self.dst else ""
        mask = f"/{self.fwmask:#x}" if self.fwmask is not None else ""
        mark = f" fwmark {self.fwmark:#x}{mask}" if self.fwmark is not None else ""
        table = "main" if self.table == MAIN_TABLE else str(self.table)
        return f"-{self.family} pref {self.priority}{match}{mark} lookup {table} proto {PROTOCOL}"


@dataclasses.dataclass(frozen=True, kw_only=True)
class Link:
    name: str
    index: int
    kind: str | None
    mtu: int
    up: bool
    peer_index: int | None = None
    alias: str | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class NamespaceState:
    """What the adapter read from one namespace: all links and addresses, our routes/rules."""

    links: Mapping[str, Link] = dataclasses.field(default_factory=dict)
    addresses: frozenset[Address] = frozenset()
    routes: frozenset[Route] = frozenset()
    rules: frozenset[Rule] = frozenset()
    sysctls: Mapping[str, str] = dataclasses.field(default_factory=dict)
    nft_digest: str | None = None


# --- changes ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, kw_only=True)
class Change:
    """One write to one namespace (`netns` is a key the adapter resolved)."""

    netns: str

    def describe(self) -> str:
        raise NotImplementedError


@dataclasses.dataclass(frozen=True, kw_only=True)
class CreateVeth(Change):
    name: str
    peer_netns: str
    peer_name: str
    mtu: int
    alias: str

    def describe(self) -> str:
        return (
            f"ip -n {self.netns} link add {self.name} mtu {self.mtu} up alias {self.alias!r} "
            f"type veth peer name {self.peer_name} netns {self.peer_netns} mtu {self.mtu} up"
        )


@dataclasses.dataclass(frozen=True, kw_only=True)
class DeleteLink(Change):
    name: str

    def describe(self) -> str:
        return f"ip -n {self.netns} link del {self.name}"


@dataclasses.dataclass(frozen=True, kw_only=True)
class SetLink(Change):
    name: str
    mtu: int | None = None
    up: bool = False
    alias: str | None = None  # the owner label, when a crash left the link without it

    def describe(self) -> str:
        mtu = f" mtu {self.mtu}" if self.mtu is not None else ""
        alias = f" alias {self.alias!r}" if self.alias is not None else ""
        return f"ip -n {self.netns} link set {self.name}{mtu}{' up' if self.up else ''}{alias}"


@dataclasses.dataclass(frozen=True, kw_only=True)
class AddAddress(Change):
    address: Address

    def describe(self) -> str:
        return f"ip -n {self.netns} addr add {self.address} nodad"


@dataclasses.dataclass(frozen=True, kw_only=True)
class DeleteAddress(Change):
    address: Address

    def describe(self) -> str:
        return f"ip -n {self.netns} addr del {self.address}"


@dataclasses.dataclass(frozen=True, kw_only=True)
class AddRoute(Change):
    route: Route

    def describe(self) -> str:
        return f"ip -n {self.netns} route add {self.route}"


@dataclasses.dataclass(frozen=True, kw_only=True)
class DeleteRoute(Change):
    route: Route

    def describe(self) -> str:
        return f"ip -n {self.netns} route del {self.route}"


@dataclasses.dataclass(frozen=True, kw_only=True)
class AddRule(Change):
    rule: Rule

    def describe(self) -> str:
        return f"ip -n {self.netns} rule add {self.rule}"


@dataclasses.dataclass(frozen=True, kw_only=True)
class DeleteRule(Change):
    rule: Rule

    def describe(self) -> str:
        return f"ip -n {self.netns} rule del {self.rule}"


@dataclasses.dataclass(frozen=True, kw_only=True)
class SetSysctl(Change):
    key: str
    value: str

    def describe(self) -> str:
        return f"ip netns exec {self.netns} sysctl -w {self.key.replace('/', '.')}={self.value}"


@dataclasses.dataclass(frozen=True, kw_only=True)
class ReplaceNftables(Change):
    ruleset: str
    digest: str

    def describe(self) -> str:
        return f"ip netns exec {self.netns} nft -f - <<EOF\n{self.ruleset}EOF"


@dataclasses.dataclass(frozen=True, kw_only=True)
class DeleteNftables(Change):
    """Remove our table (absent is fine)."""

    def describe(self) -> str:
        return f"ip netns exec {self.netns} nft delete table inet {NFT_TABLE}"
