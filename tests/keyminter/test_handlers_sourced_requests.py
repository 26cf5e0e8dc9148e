"""Issue 18, finding 3: a key request that a stream `sources` entry copied into TAILWIRE_WORK
(with a subject transform that gives it a key request's subject) was not published by the
renderer. The keyminter dead-letters it, naming `Nats-Stream-Source`, and does not act on
it: here a forged `revoke=true` for an owner whose key is live leaves the key valid."""

from __future__ import annotations

import asyncio
import base64

from nats.aio.client import Client
from nats.js import api

from tailwire.shared import bus, subjects
from tailwire.shared.events import deadletter, keys
from tailwire.testing import controlapi, kubeapi

from . import helpers
from .conftest import KeyminterStarter

OWNER = subjects.ObjectRef(kind=subjects.Kind.EGRESSGROUP, namespace=None, name="payments")
# A subject another service may publish on (the watcher's), captured by TAILWIRE_CLUSTER.
CARRIER = subjects.cluster(OWNER)


async def _source_into_work(nats_client: Client) -> None:
    """What a `STREAM.UPDATE` of TAILWIRE_WORK could add: TAILWIRE_CLUSTER as a source,
    with the carrier's messages renamed to the owner's key-request subject."""
    js = nats_client.jetstream()
    config = (await js.stream_info(bus.WORK_STREAM)).config
    config.sources = [
        api.StreamSource(
            name=bus.CLUSTER_STREAM,
            subject_transforms=[
                api.SubjectTransform(src=CARRIER, dest=subjects.keys_request(OWNER))
            ],
        )
    ]
    await js.update_stream(config)


async def test_a_sourced_revoke_is_dead_lettered_and_the_key_stays(
    nats_client: Client,
    kube: kubeapi.KubeAPI,
    control_api: controlapi.FakeControlAPI,
    start_keyminter: KeyminterStarter,
) -> None:
    tap = helpers.BusTap()
    await nats_client.subscribe("tailwire.>", cb=tap.on_message)
    request = helpers.key_request(helpers.egress_group(kube))
    forged = request.model_copy(update={"revoke": True})
    js = nats_client.jetstream()
    async with start_keyminter():
        await js.publish(subjects.keys_request(OWNER), request.to_bytes())
        async with asyncio.timeout(15):
            await tap.wait_for(subjects.keys_ready(OWNER))
        await _source_into_work(nats_client)
        await js.publish(CARRIER, forged.to_bytes())
        async with asyncio.timeout(15):
            [letter_msg] = await tap.wait_for(subjects.deadletter(subjects.Service.KEYMINTER))
        await asyncio.sleep(0.5)  # a revoke, had it been acted on, would have been published

    letter = deadletter.DeadLetter.model_validate_json(letter_msg.data)
    assert letter.subject == subjects.keys_request(OWNER)
    assert letter.reason.startswith(f"{bus.STREAM_SOURCE_HEADER}: ")
    assert bus.CLUSTER_STREAM in letter.reason
    assert keys.KeyRequest.model_validate_json(base64.b64decode(letter.payload_b64)).revoke
    assert bus.STREAM_SOURCE_HEADER in letter.headers
    assert not [m for m in tap.messages if m.subject == subjects.keys_revoked(OWNER)]
    assert len(helpers.valid_keys(control_api)) == 1
