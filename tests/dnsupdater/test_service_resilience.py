"""The service: idles without zones, dead-letters bad snapshots and keeps going, retries."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from nats.aio.client import Client

from tailwire.services.dnsupdater import app, config
from tailwire.shared import settings, subjects
from tailwire.shared.events import deadletter
from tailwire.testing import bind

from . import snapshots
from .conftest import Feed, rfc2136_settings


async def test_without_zones_it_starts_idles_and_says_so(
    bus_settings: settings.BusSettings,
    caplog: pytest.LogCaptureFixture,
    nats_client: Client,  # the streams declared, as their owner (the renderer) would
) -> None:
    caplog.set_level(logging.INFO, logger="tailwire.services.dnsupdater")
    wired = app.wire(bus_settings=bus_settings, dns_settings=config.DnsUpdaterSettings())
    await wired.runtime.app.start()
    await wired.runtime.app.stop()
    assert wired.reconciler is None
    assert "no zone is configured" in caplog.text


async def test_a_malformed_snapshot_is_dead_lettered_and_the_next_one_served(
    bind_server: bind.BindServer,
    start_dnsupdater: Any,
    producer: Any,
    feed: Feed,
    nats_client: Client,
) -> None:
    js = nats_client.jetstream()
    letters = await js.subscribe(subjects.deadletter("dnsupdater"), ordered_consumer=True)
    async with start_dnsupdater(dns_settings=rfc2136_settings(bind_server)):
        bad = snapshots.route("docs", hostnames=("docs.example.test",)).model_dump(mode="json")
        bad["hostnames"] = "docs.example.test"  # a string, not a list
        await js.publish("tailwire.v1.cluster.httproute.apps.docs", json.dumps(bad).encode())
        letter = deadletter.DeadLetter.model_validate_json((await letters.next_msg(timeout=5)).data)
        assert "hostnames" in letter.reason
        await producer(snapshots.gateway())
        await producer(snapshots.tailscale_service())
        await producer(snapshots.route("docs", hostnames=("docs.example.test",)))
        change = await feed.next()
        assert {r.name for r in change.added} == {"docs.example.test"}


async def test_a_refused_key_writes_nothing_and_the_service_keeps_serving(
    bind_server: bind.BindServer, start_dnsupdater: Any, producer: Any, feed: Feed
) -> None:
    wrong_key = rfc2136_settings(bind_server, tsig_secret="AAAA" + bind_server.key_secret[4:])
    async with start_dnsupdater(dns_settings=wrong_key) as wired:
        await producer(snapshots.gateway())
        await producer(snapshots.tailscale_service())
        await producer(snapshots.route("docs", hostnames=("docs.example.test",)))
        await feed.nothing(within=0.5)
        assert wired.reconciler is not None
        assert wired.reconciler.targets[0].applied is None  # will read back before writing
    assert bind_server.query("docs.example.test") == []
