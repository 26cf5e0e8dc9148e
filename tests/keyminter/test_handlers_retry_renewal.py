"""Transient failures go back to JetStream with a delay and come back; the renewal pass
publishes `keys.ready` for each key it replaced."""

from __future__ import annotations

import asyncio

from nats.aio.client import Client

from tailwire.services.keyminter import configuration, handlers
from tailwire.shared import bus, settings, subjects
from tailwire.shared.events import keys
from tailwire.testing import controlapi, kubeapi

from . import helpers
from .conftest import KeyminterStarter, MinterFactory

PAYMENTS = subjects.ObjectRef(kind=subjects.Kind.EGRESSGROUP, namespace=None, name="payments")


async def test_outage_beyond_the_backoff_is_redelivered_and_then_served(
    nats_client: Client,
    kube: kubeapi.KubeAPI,
    control_api: controlapi.FakeControlAPI,
    start_keyminter: KeyminterStarter,
) -> None:
    tap = helpers.BusTap()
    await nats_client.subscribe("tailwire.>", cb=tap.on_message)
    control_api.faults.respond(status=503, route="/api/v2/tailnet/*/keys", method="POST")
    request = helpers.key_request(helpers.egress_group(kube))
    # One attempt per delivery and a short first delay: the redelivery is JetStream's own.
    quick = configuration.KeyminterSettings(
        retry_attempts=1, backoff_base_seconds=0.2, renewal_check_seconds=3600
    )
    async with start_keyminter(quick):
        await nats_client.jetstream().publish(subjects.keys_request(PAYMENTS), request.to_bytes())
        async with asyncio.timeout(15):
            [failed_msg] = await tap.wait_for(subjects.keys_failed(PAYMENTS))
            [ready_msg] = await tap.wait_for(subjects.keys_ready(PAYMENTS))
    failed = keys.KeyFailed.model_validate_json(failed_msg.data)
    assert failed.retryable
    assert failed.reason == "BackendUnavailable"
    assert "HTTP 503" in failed.message
    ready = keys.KeyReady.model_validate_json(ready_msg.data)
    assert helpers.valid_keys(control_api) == [ready.key_id]
    assert not any(m.subject.startswith("tailwire.v1.deadletter.") for m in tap.messages)


async def test_renewal_pass_publishes_ready_for_renewed_keys_only(
    bus_settings: settings.BusSettings,
    nats_client: Client,
    make_minter: MinterFactory,
    control_api: controlapi.FakeControlAPI,
    kube: kubeapi.KubeAPI,
    clock: controlapi.FakeClock,
) -> None:
    tap = helpers.BusTap()
    await nats_client.subscribe("tailwire.>", cb=tap.on_message)
    minter = make_minter()
    old = await minter.ensure_key(helpers.key_request(helpers.egress_group(kube)))
    clock.advance(seconds=40 * 24 * 3600)
    young = await minter.ensure_key(helpers.key_request(helpers.egress_group(kube, name="young")))
    clock.advance(seconds=33 * 24 * 3600)  # day 73 for the first key, day 33 for the second
    work = handlers.KeyWork(minter=minter)
    broker = bus.make_broker(service=subjects.Service.KEYMINTER, bus=bus_settings)
    await bus.connect_and_declare(broker, bus=bus_settings)
    try:
        assert await work.renew_due(broker=broker) == 1
        async with asyncio.timeout(10):
            [ready_msg] = await tap.wait_for(subjects.keys_ready(PAYMENTS))
    finally:
        await broker.stop()
    renewed = keys.KeyReady.model_validate_json(ready_msg.data)
    assert renewed.key_id != old.key_id
    assert helpers.valid_keys(control_api) == sorted([renewed.key_id, young.key_id])
