"""Golden CoreDNS ConfigMaps: the tailnet resolver, and the rewrite merged into a Corefile."""

from __future__ import annotations

import pytest

from tailwire.services.dnsupdater.domain import corefiles
from tailwire.shared.events import dns

from . import golden

# kube-system/coredns as kubeadm and K3s ship it, plus a user's own stub zone.
USER_COREFILE = """\
.:53 {
    errors
    health {
       lameduck 5s
    }
    ready
    kubernetes cluster.local in-addr.arpa ip6.arpa {
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
       ttl 30
    }
    prometheus :9153
    forward . /etc/resolv.conf {
       max_concurrent 1000
    }
    cache 30
    loop
    reload
    loadbalance
}
corp.internal:53 {
    forward . 10.0.0.2
}
"""

SEED_REWRITE = (
    r"rewrite name regex (.*)\.sudhanva\.me gateway-internal.envoy-gateway.svc.cluster.local"
    " answer auto"
)


def _block(*zones: str) -> str:
    return corefiles.render_rewrite_block(
        zones=zones,
        internal_service="gateway-internal",
        namespace="envoy-gateway",
        cluster_domain="cluster.local",
    )


def test_rewrite_block_matches_the_seed_and_golden() -> None:
    block = _block("sudhanva.me", "example.test")
    assert SEED_REWRITE in block
    merged = corefiles.merge_corefile(USER_COREFILE, block=block)
    golden.check("coredns-rewrite.Corefile", merged)
    # The user's Corefile is untouched, byte for byte, before the block.
    assert merged.startswith(USER_COREFILE)


def test_merge_is_idempotent_replaces_in_place_and_removes_cleanly() -> None:
    once = corefiles.merge_corefile(USER_COREFILE, block=_block("sudhanva.me"))
    assert corefiles.merge_corefile(once, block=_block("sudhanva.me")) == once
    edited_after = once + "extra.zone:53 {\n    forward . 10.0.0.3\n}\n"
    replaced = corefiles.merge_corefile(edited_after, block=_block("example.test"))
    assert "sudhanva" not in replaced
    assert replaced.endswith("extra.zone:53 {\n    forward . 10.0.0.3\n}\n")
    assert corefiles.merge_corefile(once, block="") == USER_COREFILE
    assert corefiles.merge_corefile(USER_COREFILE, block="") == USER_COREFILE


def test_hand_edits_inside_the_block_are_replaced() -> None:
    once = corefiles.merge_corefile(USER_COREFILE, block=_block("sudhanva.me"))
    tampered = once.replace("cache 30\n}\n# END", "cache 300\n}\n# END")
    assert tampered != once
    assert corefiles.merge_corefile(tampered, block=_block("sudhanva.me")) == once


def test_resolver_configmap_golden() -> None:
    records = [
        dns.Record(name="docs.sudhanva.me", type="A", value="100.64.0.10"),
        dns.Record(name="docs.sudhanva.me", type="AAAA", value="fd7a:115c:a1e0::a"),
        dns.Record(name="vault.sudhanva.me", type="A", value="100.64.0.10"),
        dns.Record(name="*.apps.sudhanva.me", type="A", value="100.64.0.10"),
    ]
    corefile = corefiles.render_resolver_corefile(zones=[("sudhanva.me", 60), ("example.test", 30)])
    hosts = corefiles.render_hosts(zone="sudhanva.me", records=records)
    golden.check("resolver.Corefile", corefile)
    golden.check("resolver-sudhanva.me.hosts", hosts)
    golden.check("resolver-sudhanva.me.soa", corefiles.render_soa_zone(zone="sudhanva.me", ttl=60))
    # What was written reads back as the same records (minus the wildcard hosts cannot say).
    assert corefiles.parse_hosts(hosts, ttl=60) == frozenset(records[:3])


@pytest.mark.parametrize("line", ["not-an-ip docs.sudhanva.me", "# only a comment", "   "])
def test_unreadable_hosts_lines_are_ignored(line: str) -> None:
    assert corefiles.parse_hosts(line + "\n", ttl=60) == frozenset()


def test_names_the_hosts_file_lacks_are_denied_by_the_zones_soa() -> None:
    """A real CoreDNS answered SERVFAIL for a deleted route's name and for the zone's SOA:
    `hosts` has no SOA to say NXDOMAIN with. It now falls through to `file` serving a zone of
    just the SOA, named by the ConfigMap key the backend writes next to the Corefile."""
    corefile = corefiles.render_resolver_corefile(
        zones=[("sudhanva.me", 60)], mount_path="/etc/coredns"
    )
    block = corefile.split("sudhanva.me:53 {\n", 1)[1]
    hosts_end = block.index("        fallthrough\n    }\n")
    assert block.index("    hosts /etc/coredns/sudhanva.me.hosts sudhanva.me {") < hosts_end
    assert f"    file /etc/coredns/{corefiles.soa_key('sudhanva.me')} sudhanva.me\n" in block
    soa = corefiles.render_soa_zone(zone="Sudhanva.ME.", ttl=60)
    assert soa.splitlines() == [
        "$ORIGIN sudhanva.me.",
        "@ 60 IN SOA ns.sudhanva.me. hostmaster.sudhanva.me. 1 7200 1800 86400 60",
    ]
