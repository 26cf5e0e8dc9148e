"""Issue 18, finding 7: a change larger than one DNS message (64 KiB over TCP) used to make
dnspython raise TooBig on every pass, freezing the zone for every team. The backend now sends
it as several signed UPDATEs, each holding whole names, and real BIND ends up with all of it."""

from __future__ import annotations

from typing import Literal

from tailwire.services.dnsupdater.adapters import rfc2136
from tailwire.services.dnsupdater.domain import records
from tailwire.shared.events import dns as dns_events
from tailwire.testing import bind


def backend(server: bind.BindServer) -> rfc2136.Rfc2136Backend:
    return rfc2136.Rfc2136Backend(
        server=server.host,
        port=server.port,
        key_name=server.key_name,
        key_secret=server.key_secret,
        key_algorithm=server.key_algorithm,
    )


async def test_a_change_larger_than_one_message_is_applied_whole(
    bind_server: bind.BindServer,
) -> None:
    zone = bind_server.zones[0]
    many = tuple(
        dns_events.Record(
            name=f"service-with-a-long-name-{i:04d}.team-{i % 7}.{zone}",
            type="A",
            value=f"100.64.{i // 250}.{i % 250 + 1}",
            ttl=60,
        )
        for i in range(2500)
    ) + tuple(
        dns_events.Record(
            name=f"service-with-a-long-name-{i:04d}.team-{i % 7}.{zone}",
            type="TXT",
            value='"heritage=tailwire,owner=some-team/some-route"',
            ttl=60,
        )
        for i in range(2500)
    )
    target = backend(bind_server)
    await target.apply(zone, change=records.Change(added=many), desired=frozenset(many))
    held = await target.read(zone)
    assert set(many) <= held
    # And removing them all is as large a change.
    await target.apply(zone, change=records.Change(removed=many), desired=frozenset())
    assert not set(many) & await target.read(zone)


KINDS: tuple[tuple[Literal["A", "AAAA"], str], ...] = (
    ("A", "100.64.0.1"),
    ("AAAA", "fd7a:115c:a1e0::1"),
)


def test_batches_hold_whole_names_and_stay_under_the_message_limit() -> None:
    zone = "example.test"
    change = records.Change(
        added=tuple(
            dns_events.Record(name=f"n{i}.{zone}", type=t, value=v, ttl=60)
            for i in range(3000)
            for t, v in KINDS
        ),
        removed=tuple(
            dns_events.Record(name=f"n{i}.{zone}", type="A", value="100.64.0.9", ttl=60)
            for i in range(3000)
        ),
    )
    batches = rfc2136.batches(change)
    assert len(batches) > 1
    seen: set[str] = set()
    for batch in batches:
        names = {r.name for r in (*batch.added, *batch.removed)}
        assert not names & seen  # a name's deletes and adds travel together
        seen |= names
        assert rfc2136.estimated_size(batch) <= rfc2136.MESSAGE_BUDGET
    assert sum(len(b.added) for b in batches) == len(change.added)
    assert sum(len(b.removed) for b in batches) == len(change.removed)
