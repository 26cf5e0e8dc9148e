"""CoreDNS text: the tailnet resolver ConfigMap and the in-cluster rewrite block.

- The resolver ConfigMap (tailwire's own) serves each zone with the `hosts` plugin from a
  `<zone>.hosts` key, and `reload` picks up Corefile changes (a new zone). Names the hosts
  file does not hold fall through to the `file` plugin and a zone of just its SOA
  (`<zone>.soa` key): NXDOMAIN with the SOA, as an authoritative server says it. `hosts`
  alone answers SERVFAIL there (it has no SOA to deny with), and `template` cannot be the
  fallback: CoreDNS runs it before `hosts`, whatever the Corefile's order.
- The in-cluster rewrite lives in the user's CoreDNS ConfigMap, between BEGIN/END marker
  lines; `merge_corefile` replaces only that block and leaves every other byte alone.

Pure: renders and parses strings; must not read or write a ConfigMap.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from typing import Literal

from tailwire.services.dnsupdater.domain import exposures
from tailwire.shared.events import dns

COREFILE_KEY = "Corefile"
BEGIN_MARKER = "# BEGIN tailwire-dnsupdater (managed block: edits here are replaced)"
END_MARKER = "# END tailwire-dnsupdater"
_BLOCK = re.compile(
    r"\n*^" + re.escape(BEGIN_MARKER) + r"$.*?^" + re.escape(END_MARKER) + r"$\n?",
    re.MULTILINE | re.DOTALL,
)


def hosts_key(zone: str) -> str:
    """The ConfigMap data key holding a zone's hosts file."""
    return f"{exposures.normalize_hostname(zone)}.hosts"


def soa_key(zone: str) -> str:
    """The ConfigMap data key holding a zone's SOA-only zone file."""
    return f"{exposures.normalize_hostname(zone)}.soa"


def render_soa_zone(*, zone: str, ttl: int) -> str:
    """A zone file of just the SOA: what the `file` plugin denies unknown names with (the
    SOA's minimum, the negative-caching TTL, is the zone's TTL)."""
    name = exposures.normalize_hostname(zone)
    return (
        f"$ORIGIN {name}.\n@ {ttl} IN SOA ns.{name}. hostmaster.{name}. 1 7200 1800 86400 {ttl}\n"
    )


def render_hosts(*, zone: str, records: Iterable[dns.Record]) -> str:
    """A hosts file: `<ip> <name>` per A/AAAA record, sorted; wildcards cannot be expressed."""
    lines = [f"# tailwire dnsupdater: zone {exposures.normalize_hostname(zone)}"]
    pairs = sorted(
        (r.name, ipaddress.ip_address(r.value).version, r.value)
        for r in records
        if r.type in ("A", "AAAA") and not r.name.startswith("*.")
    )
    lines.extend(f"{value} {name}" for name, _, value in pairs)
    return "\n".join(lines) + "\n"


def parse_hosts(text: str, *, ttl: int) -> frozenset[dns.Record]:
    """Records read back from a hosts file written by `render_hosts` (or edited by hand)."""
    records: set[dns.Record] = set()
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        value, *names = line.split()
        try:
            address = ipaddress.ip_address(value)
        except ValueError:
            continue  # a line we cannot read is replaced on the next write
        kind: Literal["A", "AAAA"] = "A" if address.version == 4 else "AAAA"
        records.update(
            dns.Record(name=exposures.normalize_hostname(n), type=kind, value=str(address), ttl=ttl)
            for n in names
        )
    return frozenset(records)


def render_resolver_corefile(
    *, zones: Sequence[tuple[str, int]], mount_path: str = "/etc/coredns"
) -> str:
    """The resolver's Corefile: one server block per (zone, ttl), hosts falling through to
    the zone's SOA (`file`), and reload."""
    blocks = ["# Rendered by the tailwire dnsupdater; edits are replaced on the next change."]
    for zone, ttl in sorted(zones):
        name = exposures.normalize_hostname(zone)
        blocks.append(
            f"{name}:53 {{\n"
            "    errors\n"
            f"    hosts {mount_path}/{hosts_key(name)} {name} {{\n"
            f"        ttl {ttl}\n"
            "        reload 1s\n"
            "        fallthrough\n"
            "    }\n"
            f"    file {mount_path}/{soa_key(name)} {name}\n"
            "    reload\n"
            "}"
        )
    return "\n".join(blocks) + "\n"


def render_rewrite_block(
    *, zones: Iterable[str], internal_service: str, namespace: str, cluster_domain: str
) -> str:
    """The server blocks that send `*.zone` to the gateway-internal Service, or "" for none."""
    target = f"{internal_service}.{namespace}.svc.{cluster_domain}"
    blocks = []
    for zone in sorted({exposures.normalize_hostname(z) for z in zones}):
        pattern = r"(.*)\." + re.escape(zone).replace(r"\-", "-")
        blocks.append(
            f"{zone}:53 {{\n"
            "    errors\n"
            f"    rewrite name regex {pattern} {target} answer auto\n"
            f"    kubernetes {cluster_domain}\n"
            "    forward . /etc/resolv.conf\n"
            "    cache 30\n"
            "}"
        )
    if not blocks:
        return ""
    return "\n".join([BEGIN_MARKER, *blocks, END_MARKER]) + "\n"


def merge_corefile(existing: str, *, block: str) -> str:
    """`existing` with tailwire's block replaced, appended, or removed (when `block` is "")."""
    if _BLOCK.search(existing):
        replacement = ("\n\n" + block) if block else "\n"
        merged = _BLOCK.sub(lambda _: replacement, existing, count=1)
        return merged if block else merged.rstrip("\n") + "\n"
    if not block:
        return existing
    base = existing.rstrip("\n")
    return (base + "\n\n" + block) if base else block
