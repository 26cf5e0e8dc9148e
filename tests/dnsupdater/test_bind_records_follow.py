"""Against a real BIND 9: records appear, follow the gateway IP, go with the route, heal."""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Callable
from typing import Any

import dns.asyncquery
import dns.name
import dns.tsigkeyring
import dns.update
import prometheus_client
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tailwire.testing import bind

from . import snapshots
from .conftest import Feed, ManualTicker, rfc2136_settings, settle

DOCS = "docs.example.test"
Producer = Callable[..., Any]


async def _query(server: bind.BindServer, name: str, rdtype: str = "A") -> list[str]:
    return await asyncio.to_thread(server.query, name, rdtype)


async def _hand_edit(server: bind.BindServer, *, name: str, add_a: str | None = None) -> None:
    """What an operator with the key does by hand: drop the name's AAAA (tailwire's), add an
    A of their own there if given, and a record of their own elsewhere."""
    keyring = dns.tsigkeyring.from_text({server.key_name: server.key_secret})
    update = dns.update.UpdateMessage(
        "example.test", keyring=keyring, keyname=dns.name.from_text(server.key_name)
    )
    if add_a is not None:
        update.add(dns.name.from_text(name), 60, "A", add_a)
    update.delete(dns.name.from_text(name), "AAAA")
    update.add(dns.name.from_text("mail.example.test"), 300, "A", "192.0.2.25")
    response = await dns.asyncquery.tcp(update, server.host, port=server.port, timeout=2)
    assert response.rcode() == 0


async def _seed(
    producer: Producer, *, ips: tuple[str, ...] = ("100.64.0.10", "fd7a:115c:a1e0::a")
) -> None:
    await producer(snapshots.gateway())
    await producer(snapshots.tailscale_service(ips=ips))
    await producer(snapshots.route("docs", hostnames=(DOCS,)))


async def test_records_appear_follow_the_ip_and_leave_with_the_route(
    bind_server: bind.BindServer, start_dnsupdater: Any, producer: Producer, feed: Feed
) -> None:
    before = prometheus_client.REGISTRY.get_sample_value(
        "tailwire_dns_changes_total", {"zone": "example.test", "backend": "rfc2136"}
    )
    async with start_dnsupdater(dns_settings=rfc2136_settings(bind_server)):
        await _seed(producer)
        first = await feed.next()
        assert {r.type for r in first.added} == {"A", "AAAA", "TXT"}
        assert first.zone == "example.test"
        assert first.backend == "rfc2136"
        assert await _query(bind_server, DOCS) == ["100.64.0.10"]
        assert await _query(bind_server, DOCS, "AAAA") == ["fd7a:115c:a1e0::a"]

        await producer(snapshots.tailscale_service(ips=("100.64.0.11", "fd7a:115c:a1e0::a")))
        moved = await feed.next()
        # Each address has its own ownership marker, which moves with it.
        assert [(r.type, r.value) for r in moved.added if r.type != "TXT"] == [("A", "100.64.0.11")]
        assert [(r.type, r.value) for r in moved.removed if r.type != "TXT"] == [
            ("A", "100.64.0.10")
        ]
        assert await _query(bind_server, DOCS) == ["100.64.0.11"]

        await producer(snapshots.route("docs", hostnames=(DOCS,), deleted=True))
        gone = await feed.next()
        assert {r.type for r in gone.removed} == {"A", "AAAA", "TXT"}
        assert await _query(bind_server, DOCS) == []
        assert await _query(bind_server, DOCS, "TXT") == []
        # The zone's own records were never ours to touch.
        assert await _query(bind_server, "ns1.example.test") == ["127.0.0.1"]
    labels = {"zone": "example.test", "backend": "rfc2136"}
    after = prometheus_client.REGISTRY.get_sample_value("tailwire_dns_changes_total", labels)
    assert after is not None
    assert after - (before or 0) == 3


async def test_each_zone_gets_only_its_own_hostnames(
    bind_server: bind.BindServer, start_dnsupdater: Any, producer: Producer, feed: Feed
) -> None:
    zones = [{"zone": "example.test"}, {"zone": "other.test", "ttl": 30}]
    async with start_dnsupdater(dns_settings=rfc2136_settings(bind_server, zones=zones)):
        await producer(snapshots.gateway())
        await producer(snapshots.tailscale_service(ips=("100.64.0.10",)))
        await producer(
            snapshots.route("both", hostnames=("a.example.test", "b.other.test", "c.elsewhere.io"))
        )
        changes = {(await feed.next()).zone for _ in range(2)}
        assert changes == {"example.test", "other.test"}
        assert await _query(bind_server, "a.example.test") == ["100.64.0.10"]
        assert await _query(bind_server, "b.other.test") == ["100.64.0.10"]
        assert await _query(bind_server, "b.example.test") == []


async def test_hand_made_drift_is_repaired_and_foreign_records_stay(
    bind_server: bind.BindServer,
    start_dnsupdater: Any,
    producer: Producer,
    feed: Feed,
    ticker: ManualTicker,
) -> None:
    async with start_dnsupdater(dns_settings=rfc2136_settings(bind_server)):
        await _seed(producer)
        while await _query(bind_server, DOCS, "AAAA") == []:
            await feed.next()
        await _hand_edit(bind_server, name=DOCS)  # tailwire's AAAA deleted by hand
        assert await _query(bind_server, DOCS, "AAAA") == []

        ticker.fire()
        repair = await feed.next()
        assert {(r.type, r.value) for r in repair.added if r.type != "TXT"} == {
            ("AAAA", "fd7a:115c:a1e0::a")
        }
        assert [r for r in repair.removed if r.type != "TXT"] == []
        assert await _query(bind_server, DOCS) == ["100.64.0.10"]
        assert await _query(bind_server, DOCS, "AAAA") == ["fd7a:115c:a1e0::a"]
        assert await _query(bind_server, "mail.example.test") == ["192.0.2.25"]


async def test_someone_elses_record_at_a_name_is_never_deleted_nor_shadowed(
    bind_server: bind.BindServer,
    start_dnsupdater: Any,
    producer: Producer,
    feed: Feed,
    ticker: ManualTicker,
) -> None:
    """Issue 18, finding 2: once tailwire's marker was at a name, every A/AAAA there counted
    as its own and the next repair deleted another team's records (`www`, the apex)."""
    async with start_dnsupdater(dns_settings=rfc2136_settings(bind_server)):
        await _seed(producer)
        while await _query(bind_server, DOCS, "AAAA") == []:
            await feed.next()
        await _hand_edit(bind_server, name=DOCS, add_a="192.0.2.66")  # another team's A

        ticker.fire()
        repair = await feed.next()
        # tailwire steps back from the contested name: its own records go, theirs stay.
        assert ("A", "192.0.2.66") not in {(r.type, r.value) for r in repair.removed}
        assert repair.added == ()
        assert await _query(bind_server, DOCS) == ["192.0.2.66"]
        assert await _query(bind_server, DOCS, "TXT") == []

        # A route for a name that already holds someone's records, or the apex, takes nothing.
        await producer(snapshots.route("mail", hostnames=("mail.example.test", "example.test")))
        ticker.fire()
        await feed.nothing(within=1.0)
        assert await _query(bind_server, "mail.example.test") == ["192.0.2.25"]
        assert await _query(bind_server, "example.test") == []


async def test_nothing_is_written_when_nothing_changed(
    bind_server: bind.BindServer,
    start_dnsupdater: Any,
    producer: Producer,
    feed: Feed,
    ticker: ManualTicker,
) -> None:
    async with start_dnsupdater(dns_settings=rfc2136_settings(bind_server)) as wired:
        await _seed(producer)
        while await _query(bind_server, DOCS, "AAAA") == []:
            await feed.next()
        updates_before = bind_server.log_text().count("updating zone")
        # A new resourceVersion with the same content (the watcher saw a label change).
        passes = wired.reconciler.passes
        await producer(snapshots.route("docs", hostnames=(DOCS,)))
        async with asyncio.timeout(5):
            await wired.reconciler.wait_for_pass(after=passes)
        ticker.fire()  # and a repair that finds no drift
        await settle(wired)
        await feed.nothing()
        assert bind_server.log_text().count("updating zone") == updates_before


async def test_a_restart_rebuilds_the_view_and_converges(
    bind_server: bind.BindServer, start_dnsupdater: Any, producer: Producer, feed: Feed
) -> None:
    settings = rfc2136_settings(bind_server)
    async with start_dnsupdater(dns_settings=settings):
        await _seed(producer)
        while await _query(bind_server, DOCS, "AAAA") == []:
            await feed.next()
    # While it is down the gateway moves and a second route appears.
    await producer(snapshots.tailscale_service(ips=("100.64.0.12",)))
    await producer(snapshots.route("wiki", hostnames=("wiki.example.test",)))
    async with start_dnsupdater(dns_settings=settings):
        change = await feed.next()
        # One pass over the complete view: nothing deleted that should stay.
        assert {(r.name, r.type, r.value) for r in change.added if r.type != "TXT"} == {
            (DOCS, "A", "100.64.0.12"),
            ("wiki.example.test", "A", "100.64.0.12"),
        }
        assert await _query(bind_server, DOCS) == ["100.64.0.12"]
        assert await _query(bind_server, DOCS, "AAAA") == []
        assert await _query(bind_server, "wiki.example.test") == ["100.64.0.12"]


async def test_the_change_is_in_the_trace_of_the_snapshot(
    bind_server: bind.BindServer,
    start_dnsupdater: Any,
    producer: Producer,
    feed: Feed,
    span_exporter: InMemorySpanExporter,
) -> None:
    async with start_dnsupdater(dns_settings=rfc2136_settings(bind_server)):
        await producer(snapshots.gateway())
        await producer(snapshots.route("docs", hostnames=(DOCS,)))
        await asyncio.sleep(0)  # nothing to publish yet: no Service
        await producer(snapshots.tailscale_service())
        await feed.next()
    spans = span_exporter.get_finished_spans()
    reconcile = [s for s in spans if s.name == "dnsupdater.reconcile"]
    publishes = [s for s in spans if "tailwire.v1.dns." in s.name]
    assert publishes, [s.name for s in spans]
    trace_ids = {s.context.trace_id for s in reconcile}
    assert publishes[0].context.trace_id in trace_ids
    # ... and that trace began with a snapshot published by the producer.
    producer_traces = {
        s.context.trace_id for s in spans if "cluster.service" in s.name and s.parent is None
    }
    assert publishes[0].context.trace_id in producer_traces


async def test_a_later_route_of_another_team_never_gets_the_name(
    bind_server: bind.BindServer,
    start_dnsupdater: Any,
    producer: Producer,
    feed: Feed,
    caplog: Any,
) -> None:
    """Issue 18, finding 2: a tenant's HTTPRoute naming another team's host added its own
    Gateway's address to that name. The older claim's namespace keeps it; the later one is
    refused with both routes named, and gets the name once the owner's route is gone."""
    t0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    owner = snapshots.route("docs", hostnames=(DOCS,), created=t0)
    async with start_dnsupdater(dns_settings=rfc2136_settings(bind_server)):
        await _seed(producer)
        await producer(owner)
        while await _query(bind_server, DOCS) != ["100.64.0.10"]:
            await feed.next()
        await producer(snapshots.gateway("tenant-gw", namespace="tenant"))
        await producer(snapshots.tailscale_service(
            gateway_name="tenant-gw", gateway_namespace="tenant", ips=("100.64.0.66",),
            name="envoy-tenant",
        ))  # fmt: skip
        await producer(snapshots.route(
            "takeover", hostnames=(DOCS,), namespace="tenant", gateway_name="tenant-gw",
            gateway_namespace="tenant", created=t0 + datetime.timedelta(hours=1),
        ))  # fmt: skip
        await feed.nothing(within=1.5)
        assert await _query(bind_server, DOCS) == ["100.64.0.10"]
        assert "HTTPRoute tenant/takeover does not get docs.example.test" in caplog.text
        assert prometheus_client.REGISTRY.get_sample_value("tailwire_dns_name_conflicts") == 1

        # The owner's route goes: the name is free, and the waiting claim gets it.
        await producer(snapshots.route("docs", hostnames=(DOCS,), created=t0, deleted=True))
        while await _query(bind_server, DOCS) != ["100.64.0.66"]:
            await feed.next()
