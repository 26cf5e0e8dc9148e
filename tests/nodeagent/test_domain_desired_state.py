"""The pure domain: what a plan asks of each namespace, refusals with reasons, and diffs."""

from __future__ import annotations

import pytest

from tailwire.services.nodeagent.domain import desiring, diffing, facts
from tailwire.services.renderer.egress import links, options
from tailwire.shared import errors, ids
from tailwire.shared.events import nodes

# Link addresses as the renderer assigns them (slot = index).
LINKS = links.LinkRange(
    cidr_v4=options.Options().link_cidr_v4, cidr_v6=options.Options().link_cidr_v6
)

LINK_RANGES = ("169.254.64.0/18", "fd74:7769:7265::/80")


def member(uid: str, index: int, **update: object) -> nodes.MemberAssignment:
    base = nodes.MemberAssignment(
        pod_uid=ids.PodUID(uid),
        namespace="ns",
        name=uid,
        group=ids.GroupName("g"),
        netns=f"pod-{uid}",
        link=LINKS.addresses(index),
        routes=(nodes.CGNAT_V4, nodes.TAILNET_ULA_V6),
    )
    return base.model_copy(update=update)


def plan(*members: nodes.MemberAssignment) -> nodes.NodePlan:
    return nodes.NodePlan(
        node=ids.NodeName("n"),
        generation=1,
        gateways=(
            nodes.GatewayAssignment(group=ids.GroupName("g"), netns="gw", fwmark=0x1E, table=1717),
        ),
        members=members,
    )


def desired_member(*members: nodes.MemberAssignment) -> list[desiring.MemberDesired]:
    return list(desiring.desire(plan(*members), link_ranges=LINK_RANGES).members)


def held(desired: desiring.MemberDesired) -> tuple[facts.NamespaceState, facts.NamespaceState]:
    """The kernel state after a successful apply: what the adapter would read back."""
    gw = facts.NamespaceState(
        links={
            desired.link: facts.Link(
                name=desired.link,
                index=7,
                kind="veth",
                mtu=1280,
                up=True,
                peer_index=3,
                alias=desired.alias,
            )
        },
        addresses=desired.gateway_addresses,
    )
    pod = facts.NamespaceState(
        links={
            "ts0": facts.Link(name="ts0", index=3, kind="veth", mtu=1280, up=True, peer_index=7)
        },
        addresses=desired.member_addresses
        | {
            facts.Address(dev="ts0", cidr="fe80::1/64"),
            facts.Address(dev="eth0", cidr="10.244.1.5/24"),
        },
        routes=desired.routes,
        rules=desired.rules,
        nft_digest=desired.digest,
    )
    return gw, pod


def test_tailnet_ranges_go_via_the_gateway_in_main() -> None:
    (desired,) = desired_member(member("a", 1))
    assert desired.refused is None
    assert {(r.table, r.dst, r.gateway) for r in desired.routes} == {
        (facts.MAIN_TABLE, "100.64.0.0/10", "169.254.64.2"),
        (facts.MAIN_TABLE, "fd7a:115c:a1e0::/48", "fd74:7769:7265::2"),
    }
    assert desired.rules == frozenset()


def test_exit_node_and_covering_routes_live_behind_the_carve_outs() -> None:
    (desired,) = desired_member(
        member(
            "a",
            1,
            exit_node=True,
            routes=(nodes.CGNAT_V4, "10.0.0.0/8"),
            carve_outs=("10.244.0.0/16",),
        )
    )
    tables = {r.dst: r.table for r in desired.routes}
    assert tables == {"100.64.0.0/10": 254, "10.0.0.0/8": 7717, "0.0.0.0/0": 7717, "::/0": 7717}
    assert sorted(str(r) for r in desired.rules) == [
        "-4 pref 5205 fwmark 0x10000000/0x10000000 lookup main proto 77",
        "-4 pref 5210 to 10.244.0.0/16 lookup main proto 77",
        "-4 pref 5220 lookup 7717 proto 77",
        "-6 pref 5205 fwmark 0x10000000/0x10000000 lookup main proto 77",
        "-6 pref 5220 lookup 7717 proto 77",
    ]
    # Connections that came in on eth0 carry the mark: their replies skip table 7717.
    assert desired.ruleset is not None
    assert "ct mark set ct mark or 0x10000000" in desired.ruleset
    assert "meta mark set meta mark or 0x10000000" in desired.ruleset


def test_a_member_without_a_dedicated_table_marks_nothing_and_loses_old_marking() -> None:
    (plain,) = desired_member(member("a", 1))
    assert (plain.ruleset, plain.digest) == (None, None)
    (marked,) = desired_member(member("a", 1, exit_node=True, carve_outs=("10.96.0.0/12",)))
    gw, pod = held(marked)
    assert diffing.reads_member_table(marked, facts.NamespaceState())
    assert not diffing.reads_member_table(plain, facts.NamespaceState())
    assert diffing.reads_member_table(plain, pod)  # our reply rule is still there
    kinds = [type(c).__name__ for c in diffing.diff_member(plain, gateway=gw, member=pod)]
    assert kinds.count("DeleteRule") == 5
    assert "DeleteNftables" in kinds
    link = gw.links[marked.link]
    removal = diffing.diff_removal(gateway_netns="gw", link=link, member_netns="pod-a", member=pod)
    assert [type(c).__name__ for c in removal][-2:] == ["DeleteNftables", "DeleteLink"]


def test_refusals_name_the_reason_and_spare_the_others() -> None:
    inside = member("b", 2, routes=("10.244.5.0/24",), carve_outs=("10.244.0.0/16",))
    twin = member("c", 1)
    outside = member("d", 3).model_copy(
        update={
            "link": member("d", 3).link.model_copy(
                update={"member_v4": "10.9.9.1/31", "gateway_v4": "10.9.9.0/31"}
            )
        }
    )
    orphan = member("e", 4, group=ids.GroupName("nogateway"))
    results = {
        m.pod_uid: m.refused for m in desired_member(member("a", 1), inside, twin, outside, orphan)
    }
    assert results["a"] is None
    assert "lies inside the cluster CIDR 10.244.0.0/16" in (results["b"] or "")
    assert "collides with pod a" in (results["c"] or "")
    assert "link.member_v4: 10.9.9.1/31 is outside the link range" in (results["d"] or "")
    assert "has no gateway on this node" in (results["e"] or "")


def test_an_applied_member_needs_no_change_and_a_new_one_is_built_in_order() -> None:
    (desired,) = desired_member(member("a", 1, exit_node=True, carve_outs=("10.96.0.0/12",)))
    gw, pod = held(desired)
    assert diffing.diff_member(desired, gateway=gw, member=pod) == []

    changes = diffing.diff_member(
        desired, gateway=facts.NamespaceState(), member=facts.NamespaceState()
    )
    kinds = [type(c).__name__ for c in changes]
    assert kinds[0] == "CreateVeth"
    assert kinds.index("AddAddress") < kinds.index("AddRoute") < kinds.index("AddRule")
    assert "ip -n gw link add tw" in changes[0].describe()


def test_a_half_made_or_foreign_pair_is_rebuilt_and_an_mtu_change_only_set() -> None:
    (desired,) = desired_member(member("a", 1))
    gw, pod = held(desired)
    stray = facts.NamespaceState(
        links={
            "ts0": facts.Link(name="ts0", index=3, kind="veth", mtu=1280, up=True, peer_index=99)
        }
    )
    kinds = [type(c).__name__ for c in diffing.diff_member(desired, gateway=gw, member=stray)]
    assert kinds[:3] == ["DeleteLink", "DeleteLink", "CreateVeth"]

    small = facts.NamespaceState(
        links={
            "ts0": facts.Link(name="ts0", index=3, kind="veth", mtu=1500, up=True, peer_index=7)
        },
        addresses=pod.addresses,
        routes=pod.routes,
        rules=pod.rules,
    )
    changes = diffing.diff_member(desired, gateway=gw, member=small)
    assert [c.describe() for c in changes] == [f"ip -n {desired.netns} link set ts0 mtu 1280"]


def test_gateway_changes_and_stale_links() -> None:
    (gateway,) = desiring.desire(plan()).gateways
    changes = diffing.diff_gateway(gateway, facts.NamespaceState())
    # The sysctls are the gateway pod's to set: checked, written only when configured to.
    assert not any(isinstance(c, facts.SetSysctl) for c in changes)
    unread = diffing.sysctl_error(gateway, facts.NamespaceState())
    assert unread is not None
    assert "net.ipv4.ip_forward cannot be read (it must be 1)" in unread
    writing = diffing.diff_gateway(gateway, facts.NamespaceState(), write_sysctls=True)
    assert sum(isinstance(c, facts.SetSysctl) for c in writing) == 4
    assert sum(isinstance(c, facts.ReplaceNftables) for c in changes) == 1
    assert 'oifname "tailscale0" meta mark 0x1e masquerade' in gateway.ruleset
    applied = facts.NamespaceState(
        sysctls=dict(gateway.sysctls),
        nft_digest=gateway.digest,
        routes=gateway.routes,
        rules=gateway.rules,
    )
    assert diffing.diff_gateway(gateway, applied) == []
    assert diffing.diff_gateway(gateway, applied, write_sysctls=True) == []
    assert diffing.sysctl_error(gateway, applied) is None

    link = facts.Link(
        name=facts.gateway_link_name("gone"),
        index=9,
        kind="veth",
        mtu=1280,
        up=True,
        alias=facts.member_alias(pod_uid="gone", netns="pod-gone"),
    )
    foreign = facts.Link(name="tw0", index=10, kind="veth", mtu=1500, up=True, alias="theirs")
    state = facts.NamespaceState(links={link.name: link, "tw0": foreign})
    assert diffing.stale_links(state, keep={"a"}) == [(link, "gone", "pod-gone")]
    assert diffing.stale_links(state, keep={"gone"}) == []


def test_a_ts0_of_the_pods_own_is_never_replaced() -> None:
    (desired,) = desired_member(member("a", 1))
    own = facts.NamespaceState(
        links={"ts0": facts.Link(name="ts0", index=3, kind="wireguard", mtu=1420, up=True)}
    )
    with pytest.raises(errors.DatapathError, match="did not create"):
        diffing.diff_member(desired, gateway=facts.NamespaceState(), member=own)


def test_replies_to_members_look_up_main_ahead_of_tailscaleds_table() -> None:
    """With an exit node and no LAN access, tailscaled routes every local subnet (the members'
    links too) into tailscale0 from table 52 (rule 5270); seen on real tailscaled v1.102.5."""
    (gateway,) = desiring.desire(plan(), link_ranges=LINK_RANGES).gateways
    links = {str(r) for r in gateway.rules if r.priority == facts.MEMBER_LINKS_PRIORITY}
    assert links == {
        "-4 pref 5190 to 169.254.64.0/18 lookup main proto 77",
        "-6 pref 5190 to fd74:7769:7265::/80 lookup main proto 77",
    }
    assert facts.MEMBER_LINKS_PRIORITY < facts.GATEWAY_RULE_PRIORITY < 5210  # tailscaled's first
