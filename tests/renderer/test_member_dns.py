"""MagicDNS for members (issue 14, item 8): a group with `dns.magicDNS` reports the members
whose pods lack the documented dnsConfig (dnsPolicy None, nameserver 100.100.100.100 first),
by name, as Degraded=MemberDNSNotConfigured; `tests/realpeers/test_tailscaled_lifecycle.py`
proves on real tailscaled that this dnsConfig resolves tailnet names and keeps cluster DNS."""

from __future__ import annotations

import datetime
from typing import Any

from tailwire.services.renderer import view
from tailwire.services.watcher import domain
from tailwire.shared import subjects
from tailwire.shared.events import cluster
from tailwire.shared.resources import loading
from tests.renderer import helpers

NOW = datetime.datetime(2026, 12, 2, tzinfo=datetime.UTC)
QUAD100_ONLY = {"dnsPolicy": "None", "dnsConfig": {"nameservers": ["100.100.100.100"]}}


def pod(name: str, spec: dict[str, Any]) -> cluster.PodSnapshot:
    """A pod as the watcher normalizes it from the API's JSON."""
    snapshot = domain.normalize(
        domain.BY_KIND[subjects.Kind.POD],
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": "payments", "uid": f"u-{name}",
                         "resourceVersion": "1", "labels": {"tailgate.dev/egress": "true"}},
            "spec": {"nodeName": "node-a", **spec},
            "status": {"phase": "Running", "podIP": "10.244.1.5"},
        },
    )  # fmt: skip
    assert isinstance(snapshot, cluster.PodSnapshot)
    return snapshot


def degraded(dns: dict[str, Any], *pods: cluster.PodSnapshot) -> tuple[str, str, str]:
    v = view.ClusterView()
    for obj in (helpers.node("node-a"), helpers.group("peers", {**helpers.PEERS_SPEC, "dns": dns}),
                *pods):  # fmt: skip
        v.apply(obj)
    cond = helpers.conditions_on_node_a(v, "peers", now=NOW)["Degraded"]
    return cond.status, cond.reason, cond.message


def test_the_watcher_keeps_a_pods_dns_policy_and_nameservers() -> None:
    member = pod("api-0", QUAD100_ONLY)
    assert (member.dns_policy, member.dns_nameservers) == ("None", ("100.100.100.100",))
    assert member.resolves_magic_dns
    assert not pod("api-1", {}).resolves_magic_dns
    # ClusterFirst puts the cluster DNS first: it answers NXDOMAIN for tailnet names.
    assert not pod("api-2", {**QUAD100_ONLY, "dnsPolicy": "ClusterFirst"}).resolves_magic_dns


def test_members_without_the_dns_config_are_named_when_the_group_wants_magic_dns() -> None:
    good, bad = pod("api-0", QUAD100_ONLY), pod("api-1", {"dnsPolicy": "ClusterFirst"})
    value, reason, message = degraded({"magicDNS": True}, good, bad)
    assert (value, reason) == ("True", "MemberDNSNotConfigured")
    assert message.startswith("1 member(s) cannot resolve tailnet names: payments/api-1;")
    assert degraded({"magicDNS": True}, good)[:2] == ("False", "AsExpected")
    assert degraded({}, bad)[:2] == ("False", "AsExpected")  # not asked for: not reported


def test_magic_dns_needs_accept_dns() -> None:
    checked = loading.validate_object(
        {
            "apiVersion": "tailscale.rajsingh.info/v1alpha1",
            "kind": "EgressGroup",
            "metadata": {"name": "peers"},
            "spec": {**helpers.PEERS_SPEC, "dns": {"magicDNS": True, "acceptDNS": False}},
        }
    )
    assert [p.field for p in checked.problems] == ["spec.dns.magicDNS"]
