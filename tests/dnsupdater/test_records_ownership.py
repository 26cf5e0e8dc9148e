"""Which records in a shared zone are tailwire's (issue 18, finding 2): exactly those a
per-record marker names; a name holding anyone else's address is never taken."""

from __future__ import annotations

from typing import Literal

from tailwire.services.dnsupdater.domain import records
from tailwire.shared.events.dns import Record


def rec(name: str, kind: Literal["A", "AAAA", "CNAME", "TXT"], value: str) -> Record:
    return Record(name=f"{name}.example.test", type=kind, value=value, ttl=60)


OURS_A = rec("docs", "A", "100.64.0.10")
THEIRS_A = rec("docs", "A", "192.0.2.66")
LEGACY = rec("www", "TXT", records.OWNER_TXT)
WWW_A = rec("www", "A", "192.0.2.80")
CNAME = rec("blog", "CNAME", "host.example.net.")


def test_only_marked_records_are_owned_and_the_rest_make_names_foreign() -> None:
    zone = {
        OURS_A, records.marker(OURS_A), THEIRS_A, LEGACY, WWW_A, CNAME,
        rec("docs", "TXT", '"v=spf1 -all"'),
    }  # fmt: skip
    assert records.owned(zone) == {OURS_A, records.marker(OURS_A), LEGACY}
    # The older per-name marker owns itself (to be removed), never the addresses at its name.
    assert records.foreign_names(zone) == {
        "docs.example.test", "www.example.test", "blog.example.test"
    }  # fmt: skip


def test_markers_name_each_record_and_follow_its_ttl() -> None:
    marked = records.with_owner_markers({OURS_A}, ttl=30)
    (txt,) = [r for r in marked if r.type == "TXT"]
    assert txt.value == '"heritage=tailwire,tailwire/owner=dnsupdater,record=A 100.64.0.10"'
    assert txt.ttl == 30
    assert records.owned(marked) == marked
