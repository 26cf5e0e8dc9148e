"""A zone's desired records, the ownership markers, and the difference to apply.

Records are `tailwire.shared.events.dns.Record`s with absolute names spelled in lower case
without the trailing dot. In a shared authoritative zone, tailwire owns a name only if that
name carries its TXT marker (the ExternalDNS registry idea, at the same name because
tailwire publishes only A/AAAA): records of names without the marker are never touched.

Pure: must not talk to a DNS server.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping

from tailwire.services.dnsupdater.domain import exposures
from tailwire.shared.events import dns

OWNER_TXT = '"heritage=tailwire,tailwire/owner=dnsupdater"'


@dataclasses.dataclass(frozen=True, kw_only=True)
class Change:
    """What to add and remove to turn the actual records into the desired ones."""

    added: tuple[dns.Record, ...] = ()
    removed: tuple[dns.Record, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.added or self.removed)


def sort_key(record: dns.Record) -> tuple[str, str, str, int]:
    return (record.name, record.type, record.value, record.ttl)


def desired_records(
    *,
    zone: str,
    served: Mapping[str, tuple[exposures.Exposure, ...]],
    ttl: int,
    wildcards: bool = True,
) -> frozenset[dns.Record]:
    """A and AAAA records for every served hostname inside `zone`."""
    records: set[dns.Record] = set()
    for hostname, serving in served.items():
        if not exposures.in_zone(hostname, zone=zone):
            continue
        if hostname.startswith("*.") and not wildcards:
            continue
        for exposure in serving:
            records.update(
                dns.Record(name=hostname, type="A", value=ip, ttl=ttl) for ip in exposure.ipv4
            )
            records.update(
                dns.Record(name=hostname, type="AAAA", value=ip, ttl=ttl) for ip in exposure.ipv6
            )
    return frozenset(records)


def with_owner_markers(records: Iterable[dns.Record], *, ttl: int) -> frozenset[dns.Record]:
    """The records plus one ownership TXT per name."""
    records = frozenset(records)
    markers = {dns.Record(name=r.name, type="TXT", value=OWNER_TXT, ttl=ttl) for r in records}
    return records | markers


def owned(records: Iterable[dns.Record]) -> frozenset[dns.Record]:
    """Of a zone's actual records, those at names carrying tailwire's TXT marker.

    Other TXT records at an owned name are not ours either: only A, AAAA and the marker are.
    """
    records = frozenset(records)
    names = {r.name for r in records if r.type == "TXT" and r.value == OWNER_TXT}
    return frozenset(
        r
        for r in records
        if r.name in names
        and (r.type in ("A", "AAAA") or (r.type == "TXT" and r.value == OWNER_TXT))
    )


def difference(*, desired: Iterable[dns.Record], actual: Iterable[dns.Record]) -> Change:
    """Records to add and to remove (a TTL change is one of each)."""
    want, have = frozenset(desired), frozenset(actual)
    return Change(
        added=tuple(sorted(want - have, key=sort_key)),
        removed=tuple(sorted(have - want, key=sort_key)),
    )


def apply_change(records: Iterable[dns.Record], change: Change) -> frozenset[dns.Record]:
    """The record set after `change` (the cache the event path diffs against)."""
    return (frozenset(records) - frozenset(change.removed)) | frozenset(change.added)
