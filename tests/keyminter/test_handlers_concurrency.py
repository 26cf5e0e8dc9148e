"""Requests for different owners are handled side by side: a slow tailnet does not hold up
the others (one owner's requests are still serialised)."""

from __future__ import annotations

import asyncio

from nats.aio.client import Client

from tailwire.shared import subjects
from tailwire.testing import controlapi, kubeapi

from . import helpers
from .conftest import KeyminterStarter


def _ref(name: str) -> subjects.ObjectRef:
    return subjects.ObjectRef(kind=subjects.Kind.EGRESSGROUP, namespace=None, name=name)


async def test_a_slow_tailnet_does_not_hold_up_another(
    nats_client: Client,
    kube: kubeapi.KubeAPI,
    control_api: controlapi.FakeControlAPI,
    start_keyminter: KeyminterStarter,
) -> None:
    tap = helpers.BusTap()
    await nats_client.subscribe("tailwire.>", cb=tap.on_message)
    oauth = control_api.add_oauth_client(scopes=helpers.SCOPES, tags=["tag:k8s"])
    helpers.tailnet_resource(
        kube,
        name="lab",
        spec={"tailnet": "example.com", "apiURL": control_api.url},
        secret={"client_id": oauth.client_id, "client_secret": oauth.client_secret},
    )
    # Real latency on purpose: the point is what happens while one request is stuck.
    control_api.faults.delay(seconds=1.5, route="/api/v2/tailnet/example.com/keys", method="POST")
    slow = helpers.key_request(helpers.egress_group(kube, name="slow"), tailnet="lab")
    fast = helpers.key_request(helpers.egress_group(kube, name="fast"))
    async with start_keyminter():
        js = nats_client.jetstream()
        await js.publish(subjects.keys_request(_ref("slow")), slow.to_bytes())
        await js.publish(subjects.keys_request(_ref("fast")), fast.to_bytes())
        async with asyncio.timeout(15):
            await tap.wait_for(subjects.keys_ready(_ref("slow")))
    ready = [m.subject for m in tap.messages if ".keys.ready." in m.subject]
    assert ready == [subjects.keys_ready(_ref("fast")), subjects.keys_ready(_ref("slow"))]
