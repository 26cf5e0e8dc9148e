"""Differences: the changes that bring a namespace from what it holds to what it should.

An unchanged plan yields no change. Changes come in the order they must be applied
(deletions, links, addresses, routes, rules). Pure; no I/O.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from tailwire.services.nodeagent.domain import desiring, facts
from tailwire.shared import errors


def _set_diff(
    *,
    netns: str,
    desired: Iterable[facts.Route | facts.Rule],
    actual: Iterable[facts.Route | facts.Rule],
) -> tuple[list[facts.Change], list[facts.Change]]:
    """(deletions, additions) of routes or rules."""
    want, have = set(desired), set(actual)
    deletions: list[facts.Change] = []
    additions: list[facts.Change] = []
    for item in sorted(have - want, key=str):
        deletions.append(
            facts.DeleteRoute(netns=netns, route=item)
            if isinstance(item, facts.Route)
            else facts.DeleteRule(netns=netns, rule=item)
        )
    for item in sorted(want - have, key=str):
        additions.append(
            facts.AddRoute(netns=netns, route=item)
            if isinstance(item, facts.Route)
            else facts.AddRule(netns=netns, rule=item)
        )
    return deletions, additions


def _address_diff(
    *, netns: str, dev: str, desired: frozenset[facts.Address], actual: frozenset[facts.Address]
) -> tuple[list[facts.Change], list[facts.Change]]:
    have = {a for a in actual if a.dev == dev and not _link_local(a.cidr)}
    deletions: list[facts.Change] = [
        facts.DeleteAddress(netns=netns, address=a) for a in sorted(have - desired)
    ]
    additions: list[facts.Change] = [
        facts.AddAddress(netns=netns, address=a) for a in sorted(desired - have)
    ]
    return deletions, additions


def _link_local(cidr: str) -> bool:
    """The kernel's own fe80:: addresses; our IPv4 link range is link-local too, and ours."""
    ip = ipaddress.ip_interface(cidr).ip
    return ip.version == 6 and ip.is_link_local


def diff_gateway(
    desired: desiring.GatewayDesired,
    actual: facts.NamespaceState,
    *,
    write_sysctls: bool = False,
) -> list[facts.Change]:
    """The nftables table and the gateway's routes and rules; its sysctls only with
    `write_sysctls` (by default they are the gateway pod's to set: see `sysctl_error`)."""
    changes: list[facts.Change] = [
        facts.SetSysctl(netns=desired.netns, key=key, value=value)
        for key, value in desired.sysctls.items()
        if write_sysctls and actual.sysctls.get(key) != value
    ]
    if actual.nft_digest != desired.digest:
        changes.append(
            facts.ReplaceNftables(
                netns=desired.netns, ruleset=desired.ruleset, digest=desired.digest
            )
        )
    ours = {r for r in actual.routes if r.dev == facts.TAILNET_LINK}
    route_del, route_add = _set_diff(netns=desired.netns, desired=desired.routes, actual=ours)
    rule_del, rule_add = _set_diff(netns=desired.netns, desired=desired.rules, actual=actual.rules)
    return [*rule_del, *route_del, *changes, *route_add, *rule_add]


def sysctl_error(desired: desiring.GatewayDesired, actual: facts.NamespaceState) -> str | None:
    """What is wrong with the gateway netns's sysctls, naming each one; None if all hold."""
    wrong = []
    for key, value in desired.sysctls.items():
        name = key.replace("/", ".")
        have = actual.sysctls.get(key)
        if have is None:
            wrong.append(f"{name} cannot be read (it must be {value})")
        elif have != value:
            wrong.append(f"{name} is {have}, not {value}")
    if not wrong:
        return None
    return (
        f"gateway netns: sysctl {'; '.join(wrong)}: the gateway pod's privileged `sysctls` "
        "init container sets them (the nodeagent only checks; it writes them only with "
        "TAILWIRE_WRITE_GATEWAY_SYSCTLS=true)"
    )


def _paired(gateway_link: facts.Link | None, member_link: facts.Link | None) -> bool:
    return (
        gateway_link is not None
        and member_link is not None
        and gateway_link.kind == "veth"
        and member_link.kind == "veth"
        and gateway_link.peer_index == member_link.index
        and member_link.peer_index == gateway_link.index
    )


def diff_member(
    desired: desiring.MemberDesired, *, gateway: facts.NamespaceState, member: facts.NamespaceState
) -> list[facts.Change]:
    """The writes that bring one member's veth, addresses, routes and rules to the plan.

    Raises DatapathError if the pod holds a `ts0` of its own (not a veth).
    """
    if desired.refused is not None or desired.gateway_netns is None:
        return []
    gw_ns, pod_ns = desired.gateway_netns, desired.netns
    gw_link = gateway.links.get(desired.link)
    pod_link = member.links.get(facts.MEMBER_LINK)
    changes: list[facts.Change] = []
    gw_addresses, pod_addresses, pod_routes = gateway.addresses, member.addresses, member.routes
    if _paired(gw_link, pod_link):
        assert gw_link is not None
        assert pod_link is not None
        # The alias is set right after the veth is made: an agent killed in between leaves
        # a good pair without the label that says whose it is (and that removal looks for).
        alias = desired.alias if gw_link.alias != desired.alias else None
        if gw_link.mtu != desired.mtu or not gw_link.up or alias is not None:
            mtu = desired.mtu if gw_link.mtu != desired.mtu else None
            changes.append(
                facts.SetLink(
                    netns=gw_ns, name=desired.link, mtu=mtu, up=not gw_link.up, alias=alias
                )
            )
        if pod_link.mtu != desired.mtu or not pod_link.up:
            mtu = desired.mtu if pod_link.mtu != desired.mtu else None
            changes.append(
                facts.SetLink(netns=pod_ns, name=facts.MEMBER_LINK, mtu=mtu, up=not pod_link.up)
            )
    else:
        # Missing, half-made or paired with something else: rebuild both ends. A `ts0` that
        # is no veth is the pod's own device: never ours to delete.
        if pod_link is not None and pod_link.kind != "veth":
            raise errors.DatapathError(
                f"the pod already has a {facts.MEMBER_LINK} of kind {pod_link.kind or 'unknown'}"
                " that tailwire did not create; refusing to replace it"
            )
        if gw_link is not None:
            changes.append(facts.DeleteLink(netns=gw_ns, name=desired.link))
        if pod_link is not None:
            changes.append(facts.DeleteLink(netns=pod_ns, name=facts.MEMBER_LINK))
        changes.append(
            facts.CreateVeth(
                netns=gw_ns,
                name=desired.link,
                peer_netns=pod_ns,
                peer_name=facts.MEMBER_LINK,
                mtu=desired.mtu,
                alias=desired.alias,
            )
        )
        gw_addresses = pod_addresses = frozenset()
        pod_routes = frozenset(r for r in pod_routes if r.dev != facts.MEMBER_LINK)
    gw_del, gw_add = _address_diff(
        netns=gw_ns, dev=desired.link, desired=desired.gateway_addresses, actual=gw_addresses
    )
    pod_del, pod_add = _address_diff(
        netns=pod_ns, dev=facts.MEMBER_LINK, desired=desired.member_addresses, actual=pod_addresses
    )
    route_del, route_add = _set_diff(netns=pod_ns, desired=desired.routes, actual=pod_routes)
    rule_del, rule_add = _set_diff(netns=pod_ns, desired=desired.rules, actual=member.rules)
    table: list[facts.Change] = []
    if desired.ruleset is not None and desired.digest != member.nft_digest:
        assert desired.digest is not None
        table.append(
            facts.ReplaceNftables(netns=pod_ns, ruleset=desired.ruleset, digest=desired.digest)
        )
    elif desired.ruleset is None and member.nft_digest is not None:
        table.append(facts.DeleteNftables(netns=pod_ns))
    return [
        *rule_del,
        *route_del,
        *gw_del,
        *pod_del,
        *changes,
        *gw_add,
        *pod_add,
        *route_add,
        *table,
        *rule_add,
    ]


def reads_member_table(desired: desiring.MemberDesired, member: facts.NamespaceState) -> bool:
    """Whether the member's nftables table matters: it should have one, or holds our reply
    rule (the table goes with it). Saves an `nft` run per member that has neither."""
    return desired.ruleset is not None or _marks_replies(member)


def _marks_replies(member: facts.NamespaceState) -> bool:
    return any(rule.fwmark == facts.REPLY_MARK for rule in member.rules)


def stale_links(
    state: facts.NamespaceState, *, keep: Iterable[str]
) -> list[tuple[facts.Link, str, str | None]]:
    """Our member links in a gateway netns whose pod is no longer assigned there.

    Returns (link, pod UID, named netns or None) for each.
    """
    wanted = set(keep)
    stale = []
    for link in sorted(state.links.values(), key=lambda item: item.name):
        owner = facts.parse_alias(link.alias)
        if owner is None or not link.name.startswith(facts.LINK_PREFIX):
            continue
        if link.name != facts.gateway_link_name(owner[0]) or owner[0] in wanted:
            continue
        stale.append((link, owner[0], owner[1]))
    return stale


def diff_removal(
    *,
    gateway_netns: str,
    link: facts.Link,
    member_netns: str | None,
    member: facts.NamespaceState | None,
) -> list[facts.Change]:
    """Remove a departed pod: our rules and reply marking in its netns (if it still exists),
    then the veth."""
    changes: list[facts.Change] = []
    if member is not None and member_netns is not None:
        changes.extend(
            facts.DeleteRule(netns=member_netns, rule=r) for r in sorted(member.rules, key=str)
        )
        if _marks_replies(member):
            changes.append(facts.DeleteNftables(netns=member_netns))
    changes.append(facts.DeleteLink(netns=gateway_netns, name=link.name))
    return changes
