"""A zone's desired records, the ownership markers, and the difference to apply.

Records are `tailwire.shared.events.dns.Record`s with absolute names spelled in lower case
without the trailing dot. In a shared authoritative zone tailwire owns a record only if a TXT
marker at the same name names it (`"heritage=tailwire,tailwire/owner=dnsupdater,record=A
100.64.0.7"`, the ExternalDNS registry idea, one marker per record): a record of another team
at the same name is never its own, so never deleted. A name that already holds someone else's
A, AAAA or CNAME is not taken either (`foreign_names`): tailwire would shadow it. The zone's
apex is not taken unless the zone allows it. A marker of the older form (no `record=`, which
claimed every address at the name) owns nothing but itself and is replaced.

Pure: must not talk to a DNS server.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping

from tailwire.services.dnsupdater.domain import exposures
from tailwire.shared.events import dns

OWNER_TXT = '"heritage=tailwire,tailwire/owner=dnsupdater"'  # the older, per-name marker
_MARKER_PREFIX = '"heritage=tailwire,tailwire/owner=dnsupdater,record='


def marker(record: dns.Record) -> dns.Record:
    """The TXT that says tailwire made `record`."""
    value = f'{_MARKER_PREFIX}{record.type} {record.value}"'
    return dns.Record(name=record.name, type="TXT", value=value, ttl=record.ttl)


def _marked(txt: dns.Record) -> tuple[str, str] | None:
    """(type, value) a marker names, None if `txt` is no per-record marker."""
    if txt.type != "TXT" or not txt.value.startswith(_MARKER_PREFIX):
        return None
    kind, _, value = txt.value[len(_MARKER_PREFIX) :].rstrip('"').partition(" ")
    return (kind, value) if value else None


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
    apex: bool = False,
    taken: Iterable[str] = (),
) -> frozenset[dns.Record]:
    """A and AAAA records for every served hostname inside `zone`; not the apex unless
    `apex`, nor a name in `taken` (someone else's records are there)."""
    records: set[dns.Record] = set()
    skip = set(taken)
    for hostname, serving in served.items():
        if not exposures.in_zone(hostname, zone=zone) or hostname in skip:
            continue
        if not apex and hostname == exposures.normalize_hostname(zone):
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
    """The records plus one ownership TXT per record."""
    records = frozenset(records)
    markers = {marker(r.model_copy(update={"ttl": ttl})) for r in records}
    return records | markers


def owned(records: Iterable[dns.Record]) -> frozenset[dns.Record]:
    """Of a zone's actual records, tailwire's: its markers (of either form) and exactly the
    A/AAAA records a per-record marker names. Everything else is someone else's."""
    records = frozenset(records)
    claimed = {(r.name, *kv) for r in records if (kv := _marked(r)) is not None}
    return frozenset(
        r
        for r in records
        if (r.type == "TXT" and (r.value == OWNER_TXT or _marked(r) is not None))
        or (r.type in ("A", "AAAA") and (r.name, r.type, r.value) in claimed)
    )


def foreign_names(records: Iterable[dns.Record]) -> frozenset[str]:
    """Names holding an A, AAAA or CNAME that is not tailwire's: never taken over."""
    records = frozenset(records)
    ours = owned(records)
    return frozenset(r.name for r in records if r.type in ("A", "AAAA", "CNAME") and r not in ours)


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
