"""Desired state: the facts every namespace of a `NodePlan` should hold.

`desire` refuses a member with a reason (a link-address collision, an address outside the
link range, a route inside a cluster CIDR, no gateway for its group) without touching the
others. Routes that cover a carve-out (a cluster CIDR, a node address) go to the dedicated
table behind carve-out rules, like the exit node's default routes. A member with that table
also gets an nftables table and a rule that answer connections which came in on the pod's own
interface through `main` (so through that interface), whatever the dedicated table says: a
kubelet probe from a node address that is in no carve-out still gets its reply. Pure; no I/O.
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
from collections.abc import Mapping

from tailwire.services.nodeagent.domain import facts
from tailwire.shared.events import nodes


def _net(cidr: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(cidr, strict=False)


@dataclasses.dataclass(frozen=True, kw_only=True)
class GatewayDesired:
    group: str
    netns: str  # the key the adapter resolves: the assignment's netns name or its pod UID
    named: bool
    pod_uid: str | None
    sysctls: Mapping[str, str]
    ruleset: str
    digest: str
    routes: frozenset[facts.Route]
    rules: frozenset[facts.Rule]


@dataclasses.dataclass(frozen=True, kw_only=True)
class MemberDesired:
    pod_uid: str
    group: str
    netns: str
    named: bool
    gateway_netns: str | None
    link: str  # gateway-side name
    alias: str
    mtu: int
    gateway_addresses: frozenset[facts.Address]
    member_addresses: frozenset[facts.Address]
    routes: frozenset[facts.Route]
    rules: frozenset[facts.Rule]
    # Why this member cannot be stitched (nothing is written for it), or None.
    refused: str | None = None
    # The member's nftables table (reply marking) and its digest; None: it has none.
    ruleset: str | None = None
    digest: str | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class Desired:
    gateways: tuple[GatewayDesired, ...]
    members: tuple[MemberDesired, ...]


def netns_key(*, netns: str | None, pod_uid: str | None, group: str = "") -> str:
    """How a namespace is named in changes: its netns name, else `pod:<uid>`."""
    if netns:
        return netns
    if pod_uid:
        return f"pod:{pod_uid}"
    return f"gateway:{group}"


def _table(body: str) -> tuple[str, str]:
    """Our nftables table around `body` (replaced atomically) and the digest it carries."""
    digest = "sha256:" + hashlib.sha256(body.encode()).hexdigest()[:24]
    ruleset = (
        f"table inet {facts.NFT_TABLE}\n"
        f"delete table inet {facts.NFT_TABLE}\n"
        f"table inet {facts.NFT_TABLE} {{\n"
        f'  comment "tailwire {digest}"\n'
        f"{body}}}\n"
    )
    return ruleset, digest


def render_ruleset(*, fwmark: int) -> tuple[str, str]:
    """The gateway's nftables table (replaced atomically) and the digest it carries."""
    body = (
        "  chain member_marking {\n"
        "    type filter hook prerouting priority mangle; policy accept;\n"
        f'    iifname "{facts.LINK_PREFIX}*" meta mark set {fwmark:#x}\n'
        "  }\n"
        "  chain tailnet_nat {\n"
        "    type nat hook postrouting priority srcnat; policy accept;\n"
        f'    oifname "{facts.TAILNET_LINK}" meta mark {fwmark:#x} masquerade\n'
        "  }\n"
    )
    return _table(body)


def render_member_ruleset() -> tuple[str, str]:
    """A member's table: a connection whose first packet came in on any interface but `ts0`
    (and `lo`) carries `REPLY_MARK` in its conntrack mark; the pod's own packets of such a
    connection get it as their mark, and the `output` route hook routes them again with it,
    so the reply rule (`fwmark REPLY_MARK lookup main`) answers through the interface the
    connection came in on. Only that bit of either mark is ever set."""
    mark = f"{facts.REPLY_MARK:#x}"
    body = (
        "  chain reply_marking {\n"
        "    type filter hook prerouting priority mangle; policy accept;\n"
        f'    iifname != {{ "lo", "{facts.MEMBER_LINK}" }} ct state new '
        f"ct mark set ct mark or {mark}\n"
        "  }\n"
        "  chain reply_routing {\n"
        "    type route hook output priority mangle; policy accept;\n"
        f"    ct mark & {mark} == {mark} meta mark set meta mark or {mark}\n"
        "  }\n"
    )
    return _table(body)


def _desire_gateway(
    assignment: nodes.GatewayAssignment, *, link_ranges: tuple[str, ...] = ()
) -> GatewayDesired:
    ruleset, digest = render_ruleset(fwmark=assignment.fwmark)
    routes = {
        facts.Route(table=facts.MAIN_TABLE, dst=nodes.CGNAT_V4, dev=facts.TAILNET_LINK),
        facts.Route(table=facts.MAIN_TABLE, dst=nodes.TAILNET_ULA_V6, dev=facts.TAILNET_LINK),
        facts.Route(table=assignment.table, dst="0.0.0.0/0", dev=facts.TAILNET_LINK),
        facts.Route(table=assignment.table, dst="::/0", dev=facts.TAILNET_LINK),
    }
    rules = {
        facts.Rule(
            family=family,
            priority=facts.GATEWAY_RULE_PRIORITY,
            table=assignment.table,
            fwmark=assignment.fwmark,
        )
        for family in (4, 6)
    } | {
        facts.Rule(
            family=_net(cidr).version,
            priority=facts.MEMBER_LINKS_PRIORITY,
            table=facts.MAIN_TABLE,
            dst=str(_net(cidr)),
        )
        for cidr in link_ranges
    }
    return GatewayDesired(
        group=assignment.group,
        netns=netns_key(netns=assignment.netns, pod_uid=assignment.pod_uid, group=assignment.group),
        named=bool(assignment.netns),
        pod_uid=assignment.pod_uid,
        sysctls=facts.GATEWAY_SYSCTLS,
        ruleset=ruleset,
        digest=digest,
        routes=frozenset(routes),
        rules=frozenset(rules),
    )


def _check_link(
    member: nodes.MemberAssignment, *, link_ranges: tuple[str, ...]
) -> tuple[list[ipaddress.IPv4Interface | ipaddress.IPv6Interface], str | None]:
    link = member.link
    try:
        ends = [
            ipaddress.ip_interface(value)
            for value in (link.member_v4, link.gateway_v4, link.member_v6, link.gateway_v6)
        ]
    except ValueError as exc:
        return [], f"link: {exc}"
    names = ("member_v4", "gateway_v4", "member_v6", "gateway_v6")
    for name, end, version in zip(names, ends, (4, 4, 6, 6), strict=True):
        if end.version != version:
            return [], f"link.{name}: {end} is not IPv{version}"
    if ends[0].network != ends[1].network or ends[2].network != ends[3].network:
        return [], "link: the member and gateway ends are not on one subnet"
    if ends[0].ip == ends[1].ip or ends[2].ip == ends[3].ip:
        return [], "link: the member and gateway ends are the same address"
    ranges = [_net(cidr) for cidr in link_ranges]
    for name, end in zip(names, ends, strict=True):
        if ranges and not any(
            end.version == r.version and end.network.subnet_of(r)  # type: ignore[arg-type]
            for r in ranges
        ):
            return [], f"link.{name}: {end} is outside the link range {', '.join(link_ranges)}"
    return ends, None


def _member_routes(
    member: nodes.MemberAssignment, *, gw_v4: str, gw_v6: str, exit_table: int
) -> tuple[frozenset[facts.Route], frozenset[facts.Rule], str | None]:
    carve_outs = [_net(c) for c in member.carve_outs]
    routes: set[facts.Route] = set()
    table_families: set[int] = set()
    for cidr in member.routes:
        try:
            net = _net(cidr)
        except ValueError as exc:
            return frozenset(), frozenset(), f"routes: {exc}"
        for carve in carve_outs:
            if carve.version == net.version and net.subnet_of(carve):  # type: ignore[arg-type]
                return (
                    frozenset(),
                    frozenset(),
                    (
                        f"routes: {net} lies inside the cluster CIDR {carve} and would take it "
                        "off the pod's own interface"
                    ),
                )
        # A route covering a cluster CIDR goes to the dedicated table, behind the carve-outs.
        covers = any(
            c.version == net.version and c.subnet_of(net)  # type: ignore[arg-type]
            for c in carve_outs
        )
        table = exit_table if covers else facts.MAIN_TABLE
        if covers:
            table_families.add(net.version)
        via = gw_v4 if net.version == 4 else gw_v6
        routes.add(facts.Route(table=table, dst=str(net), dev=facts.MEMBER_LINK, gateway=via))
    if member.exit_node:
        routes.add(
            facts.Route(table=exit_table, dst="0.0.0.0/0", dev=facts.MEMBER_LINK, gateway=gw_v4)
        )
        routes.add(facts.Route(table=exit_table, dst="::/0", dev=facts.MEMBER_LINK, gateway=gw_v6))
        table_families |= {4, 6}
    rules: set[facts.Rule] = set()
    for family in table_families:
        rules.add(facts.Rule(family=family, priority=facts.EXIT_RULE_PRIORITY, table=exit_table))
        rules.add(
            facts.Rule(
                family=family,
                priority=facts.REPLY_RULE_PRIORITY,
                table=facts.MAIN_TABLE,
                fwmark=facts.REPLY_MARK,
                fwmask=facts.REPLY_MARK,
            )
        )
        for carve in carve_outs:
            if carve.version == family:
                rules.add(
                    facts.Rule(
                        family=family,
                        priority=facts.CARVE_OUT_PRIORITY,
                        table=facts.MAIN_TABLE,
                        dst=str(carve),
                    )
                )
    return frozenset(routes), frozenset(rules), None


def desire(plan: nodes.NodePlan, *, link_ranges: tuple[str, ...] = ()) -> Desired:
    """The facts every namespace of the plan should hold; bad members are refused alone."""
    gateways = {g.group: _desire_gateway(g, link_ranges=link_ranges) for g in plan.gateways}
    member_ruleset = render_member_ruleset()
    members: list[MemberDesired] = []
    taken: dict[tuple[str, str], str] = {}  # (gateway netns, subnet) -> pod UID
    for member in sorted(plan.members, key=lambda m: m.pod_uid):
        gateway = gateways.get(member.group)
        ends, refused = _check_link(member, link_ranges=link_ranges)
        routes: frozenset[facts.Route] = frozenset()
        rules: frozenset[facts.Rule] = frozenset()
        if gateway is None and refused is None:
            refused = f"group {member.group!r} has no gateway on this node"
        if refused is None and gateway is not None:
            for end in (ends[0], ends[2]):
                owner = taken.setdefault((gateway.netns, str(end.network)), member.pod_uid)
                if owner != member.pod_uid:
                    refused = f"link address {end} collides with pod {owner}'s link"
                    break
        if refused is None:
            routes, rules, refused = _member_routes(
                member,
                gw_v4=str(ends[1].ip),
                gw_v6=str(ends[3].ip),
                exit_table=plan.exit_node_table,
            )
        link = facts.gateway_link_name(member.pod_uid)
        ruleset, digest = member_ruleset if rules else (None, None)
        members.append(
            MemberDesired(
                pod_uid=member.pod_uid,
                group=member.group,
                netns=netns_key(netns=member.netns, pod_uid=member.pod_uid),
                named=bool(member.netns),
                gateway_netns=gateway.netns if gateway else None,
                link=link,
                alias=facts.member_alias(pod_uid=member.pod_uid, netns=member.netns),
                mtu=plan.mtu,
                gateway_addresses=frozenset(
                    facts.Address(dev=link, cidr=str(end)) for end in ends[1::2]
                ),
                member_addresses=frozenset(
                    facts.Address(dev=facts.MEMBER_LINK, cidr=str(end)) for end in ends[0::2]
                ),
                routes=routes,
                rules=rules,
                refused=refused,
                ruleset=ruleset,
                digest=digest,
            )
        )
    return Desired(gateways=tuple(gateways.values()), members=tuple(members))
