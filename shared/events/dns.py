"""DNS changes applied by the dnsupdater: `tailwire.v1.dns.<zone>.changed`."""

from __future__ import annotations

from typing import Literal

from tailwire.shared.events import base


class Record(base.Frozen):
    name: str
    type: Literal["A", "AAAA", "CNAME", "TXT"]
    value: str
    ttl: int = 60


class DnsChanged(base.Event):
    type: Literal["dns.changed"] = "dns.changed"
    zone: str
    backend: str
    added: tuple[Record, ...] = ()
    removed: tuple[Record, ...] = ()
    duration_ms: float = 0.0
