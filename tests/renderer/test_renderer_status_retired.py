"""A deleted object's status summary: one last `deleted: true` summary, expiring with the
bus's tombstone TTL, so `tailwire.v1.status.>` does not keep every group that ever existed;
a restart does not say it again."""

from __future__ import annotations

from pathlib import Path

from nats.aio.client import Client

from tailwire.services.renderer.egress import outputs
from tailwire.shared import bus, settings
from tailwire.shared.events import status
from tests.renderer import helpers


async def test_a_deleted_group_gets_one_last_summary_that_expires(
    bus_settings: settings.BusSettings, nats_client: Client, tmp_path: Path
) -> None:
    group = helpers.group("peers", helpers.PEERS_SPEC)
    subject = outputs.status_subject("peers")
    factory = helpers.unreachable_api(tmp_path / "kubeconfig")
    async with helpers.producer(bus_settings) as broker:
        await helpers.publish(broker, helpers.node("node-a"), group)
        async with helpers.running_renderer(bus_settings, kube_client_factory=factory) as renderer:
            await helpers.settled(renderer, lambda: subject in renderer.published.summaries)
            assert not renderer.published.summaries[subject].deleted
            await helpers.publish(broker, group.model_copy(update={"deleted": True}))
            await helpers.settled(renderer, lambda: renderer.published.summaries[subject].deleted)

        stored = await nats_client.jetstream().get_last_msg(bus.CLUSTER_STREAM, subject)
        last = status.StatusSummary.model_validate_json(stored.data or b"")
        assert (last.name, last.deleted, last.ready, last.conditions) == ("peers", True, False, ())
        assert stored.headers is not None
        assert stored.headers[bus.TTL_HEADER] == f"{bus_settings.tombstone_ttl}s"

        sequences = await helpers.last_sequences(nats_client)
        async with helpers.running_renderer(bus_settings, kube_client_factory=factory) as again:
            await helpers.settled(again)
        assert await helpers.last_sequences(nats_client) == sequences
