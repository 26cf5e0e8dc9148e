"""The keyminter on a real nats-server: requests in on a durable consumer, events out, and no
key material anywhere on the bus, in logs or in spans."""

from __future__ import annotations

import asyncio
import base64
import json
import logging

import pytest
from nats.aio.client import Client
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tailwire.services.keyminter import handlers
from tailwire.shared import bus, permissions, settings, subjects
from tailwire.shared.events import deadletter, keys
from tailwire.testing import controlapi, kubeapi

from . import helpers
from .conftest import KeyminterStarter

OWNER_SUBJECT = subjects.ObjectRef(kind=subjects.Kind.EGRESSGROUP, namespace=None, name="payments")


async def _publish(nats_client: Client, request: keys.KeyRequest, *, subject: str) -> None:
    await nats_client.jetstream().publish(subject, request.to_bytes())


async def _consumer_idle(nats_client: Client) -> None:
    """Until the keyminter's durable consumer has nothing pending or unacknowledged."""
    durable = permissions.KEYMINTER_REQUESTS_CONSUMER
    while True:
        info = await nats_client.jetstream().consumer_info(bus.WORK_STREAM, durable)
        if info.num_pending == 0 and info.num_ack_pending == 0:
            return
        await asyncio.sleep(0.05)


@pytest.fixture
async def tap(nats_client: Client) -> helpers.BusTap:
    tap = helpers.BusTap()
    await nats_client.subscribe("tailwire.>", cb=tap.on_message)
    return tap


async def test_mint_over_the_bus_leaks_no_key_material(
    nats_client: Client,
    tap: helpers.BusTap,
    span_exporter: InMemorySpanExporter,
    tailscale_settings: settings.TailscaleSettings,
    kube: kubeapi.KubeAPI,
    control_api: controlapi.FakeControlAPI,
    caplog: pytest.LogCaptureFixture,
    start_keyminter: KeyminterStarter,
) -> None:
    caplog.set_level(logging.DEBUG)
    request = helpers.key_request(helpers.egress_group(kube))
    async with start_keyminter():
        await _publish(nats_client, request, subject=subjects.keys_request(OWNER_SUBJECT))
        async with asyncio.timeout(15):
            [message] = await tap.wait_for(subjects.keys_ready(OWNER_SUBJECT))

    ready = keys.KeyReady.model_validate_json(message.data)
    assert ready.secret_name == request.secret_name
    assert ready.key_id in control_api.keys
    assert message.headers is not None
    assert message.headers[bus.MSG_ID_HEADER] == f"{request.owner.uid}:{ready.key_id}"
    assert "traceparent" in message.headers

    authkey = helpers.stored_authkey(kube, request)
    client_secret = tailscale_settings.tailscale_oauth_client_secret
    assert client_secret is not None
    forbidden = [authkey, authkey.rsplit("-", 1)[-1], client_secret.get_secret_value()]
    on_the_bus = [
        m.subject + json.dumps(m.headers or {}) + m.data.decode("utf-8", "replace")
        for m in tap.messages
    ]
    in_logs = [
        record.getMessage() + repr(record.args) + str(record.exc_info or "")
        for record in caplog.records
    ]
    in_spans = [
        json.dumps({**dict(span.attributes or {}), "events": [e.name for e in span.events]})
        for span in span_exporter.get_finished_spans()
    ]
    assert in_logs, "the mint logged nothing: the check below would prove nothing"
    [mint_span] = [
        s for s in span_exporter.get_finished_spans() if s.name == "keyminter.ensure_key"
    ]
    assert mint_span.attributes is not None
    assert mint_span.attributes["tailwire.key_id"] == ready.key_id
    # A child of FastStream's consumer span: one trace from the request to the ready event.
    assert mint_span.parent is not None
    parents = {s.context.span_id: s for s in span_exporter.get_finished_spans()}
    assert parents[mint_span.parent.span_id].context.trace_id == mint_span.context.trace_id
    for text in on_the_bus + in_logs + in_spans:
        for secret in forbidden:
            assert secret not in text
        assert "tskey-auth-" not in text
        assert "tskey-api-" not in text  # the OAuth access token


async def test_refused_credentials_give_keys_failed_and_a_dead_letter_once(
    nats_client: Client,
    tap: helpers.BusTap,
    kube: kubeapi.KubeAPI,
    control_api: controlapi.FakeControlAPI,
    start_keyminter: KeyminterStarter,
) -> None:
    control_api.faults.respond(status=401, route="/api/v2/oauth/token", times=None)
    request = helpers.key_request(helpers.egress_group(kube))
    async with start_keyminter():
        await _publish(nats_client, request, subject=subjects.keys_request(OWNER_SUBJECT))
        async with asyncio.timeout(15):
            [failed_msg] = await tap.wait_for(subjects.keys_failed(OWNER_SUBJECT))
            [letter_msg] = await tap.wait_for(subjects.deadletter(subjects.Service.KEYMINTER))
            # Acknowledged: nothing pending, nothing waiting for redelivery.
            await _consumer_idle(nats_client)

    failed = keys.KeyFailed.model_validate_json(failed_msg.data)
    assert failed.reason == "AuthenticationFailed"
    assert not failed.retryable
    assert "HTTP 401" in failed.message
    letter = deadletter.DeadLetter.model_validate_json(letter_msg.data)
    assert letter.reason.startswith("AuthenticationFailed")
    assert base64.b64decode(letter.payload_b64) == request.to_bytes()
    assert len(control_api.requests.matching(route="/api/v2/oauth/token")) == 1


async def test_malformed_requests_are_dead_lettered_naming_the_field(
    nats_client: Client,
    tap: helpers.BusTap,
    kube: kubeapi.KubeAPI,
    control_api: controlapi.FakeControlAPI,
    start_keyminter: KeyminterStarter,
) -> None:
    request = helpers.key_request(helpers.egress_group(kube))
    body = request.model_dump(mode="json")
    del body["hostname_prefix"]
    other = subjects.ObjectRef(kind=subjects.Kind.EGRESSGROUP, namespace=None, name="billing")
    async with start_keyminter():
        js = nats_client.jetstream()
        await js.publish(subjects.keys_request(OWNER_SUBJECT), json.dumps(body).encode())
        # A body about one owner on another owner's subject.
        await _publish(nats_client, request, subject=subjects.keys_request(other))
        # And the service keeps going: a good request after the bad ones is served.
        await _publish(nats_client, request, subject=subjects.keys_request(OWNER_SUBJECT))
        async with asyncio.timeout(15):
            letters = await tap.wait_for(subjects.deadletter(subjects.Service.KEYMINTER), count=2)
            await tap.wait_for(subjects.keys_ready(OWNER_SUBJECT))
    # Requests are handled by several workers at once: the letters may come in either order.
    reasons = sorted(deadletter.DeadLetter.model_validate_json(m.data).reason for m in letters)
    assert any("hostname_prefix" in reason for reason in reasons)
    assert any(reason.startswith("owner:") for reason in reasons)
    assert len(helpers.valid_keys(control_api)) == 1


async def test_restart_resumes_the_durable_consumer_with_one_key_per_owner(
    nats_client: Client,
    tap: helpers.BusTap,
    kube: kubeapi.KubeAPI,
    control_api: controlapi.FakeControlAPI,
    start_keyminter: KeyminterStarter,
) -> None:
    payments = helpers.key_request(helpers.egress_group(kube))
    billing = helpers.key_request(helpers.egress_group(kube, name="billing"))
    billing_subject = subjects.ObjectRef(
        kind=subjects.Kind.EGRESSGROUP, namespace=None, name="billing"
    )
    async with start_keyminter():
        await _publish(nats_client, payments, subject=subjects.keys_request(OWNER_SUBJECT))
        async with asyncio.timeout(15):
            await tap.wait_for(subjects.keys_ready(OWNER_SUBJECT))
    # While no keyminter runs: a new owner asks, and the first one asks again.
    await _publish(nats_client, billing, subject=subjects.keys_request(billing_subject))
    await _publish(nats_client, payments, subject=subjects.keys_request(OWNER_SUBJECT))
    async with start_keyminter():
        async with asyncio.timeout(15):
            await tap.wait_for(subjects.keys_ready(billing_subject))
            await _consumer_idle(nats_client)  # both waiting requests handled and acked
    info = await nats_client.jetstream().consumer_info(
        bus.WORK_STREAM, permissions.KEYMINTER_REQUESTS_CONSUMER
    )
    assert info.config.durable_name == permissions.KEYMINTER_REQUESTS_CONSUMER
    assert info.config.ack_wait == handlers.ACK_WAIT_SECONDS
    # Exactly two keys: the restarted keyminter reused the first owner's key.
    assert len(helpers.valid_keys(control_api)) == 2
    assert len(control_api.requests.matching(method="POST", route="*/keys")) == 2
