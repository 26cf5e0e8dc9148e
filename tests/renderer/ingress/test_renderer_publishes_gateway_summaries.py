"""The running renderer publishes each TailscaleGateway's status summary on
`tailwire.v1.status.tailscalegateway.<ns>.<name>`, with condition transition times, and a
restart republishes nothing."""

from __future__ import annotations

from pathlib import Path

import yaml
from nats.aio.client import Client

from tailwire.services.renderer import view
from tailwire.shared import bus, settings, subjects
from tailwire.shared.events import cluster, status
from tests.renderer import helpers

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "tailscalegateway-basic.yaml"


async def test_gateway_summary_is_published_once_and_survives_a_restart(
    bus_settings: settings.BusSettings, nats_client: Client
) -> None:
    snapshot = view.snapshot_from_manifest(yaml.safe_load(EXAMPLE.read_text()))
    assert isinstance(snapshot, cluster.TailscaleGatewaySnapshot)
    subject = subjects.status(snapshot.ref)
    async with helpers.producer(bus_settings) as broker:
        await bus.publish(
            broker, snapshot, subject=subjects.cluster(snapshot.ref), msg_id=snapshot.dedup_id
        )
        async with helpers.running_renderer(bus_settings, apply_manifests=False) as renderer:
            await helpers.settled(renderer, lambda: subject in renderer.published.summaries)
        message = await nats_client.jetstream().get_last_msg(bus.CLUSTER_STREAM, subject)
        summary = status.StatusSummary.model_validate_json(message.data or b"")
        assert (summary.kind, summary.namespace, summary.name) == (
            "tailscalegateway",
            "production",
            "production-gateway",
        )
        # The referenced Gateway and tailnet are not in the cluster: not Ready, and it says so.
        assert summary.ready is False
        assert any(c.type == "Ready" for c in summary.conditions)
        # Every condition says since when it holds; a restart keeps those times (below:
        # nothing is republished).
        assert all(c.last_transition_time is not None for c in summary.conditions)
        sequences = await helpers.last_sequences(nats_client)
        async with helpers.running_renderer(bus_settings, apply_manifests=False) as again:
            await helpers.settled(again)
        assert await helpers.last_sequences(nats_client) == sequences
