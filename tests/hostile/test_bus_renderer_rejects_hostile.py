"""The renderer under hostile messages on every feed it reads (snapshots, status summaries,
plans, acks, gateway configs, key events): each one is dead-lettered with a reason, no
exception escapes a handler, and the renderer still turns good snapshots into a plan."""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator

import pytest
from hypothesis import HealthCheck, given, settings
from nats.aio.client import Client

from tailwire.services.renderer import handlers
from tailwire.shared import ids, subjects
from tailwire.shared import settings as tw_settings
from tailwire.shared.events import base, gateways, keys, nodes, status
from tests.renderer import helpers

from . import harness, payloads

OWNER = base.OwnerRef(
    api_version="tailscale.rajsingh.info/v1alpha1", kind="EgressGroup", name="g", uid="u-g"
)
GROUP_REF = subjects.ObjectRef(kind=subjects.Kind.EGRESSGROUP, namespace=None, name="g")
CONFIG_BODY = {"Version": "alpha0", "Hostname": "g"}
FEEDS: list[tuple[base.Event, list[str]]] = [
    (
        helpers.pod("api-0", node_name="node-a"),
        [
            "tailwire.v1.cluster.pod.payments.api-0",
            "tailwire.v1.cluster.egressgroup._.g",
            "tailwire.v1.cluster.service.~E2~9C~93.x~2Ey",
            "tailwire.v1.cluster.nonsense",
        ],
    ),
    (
        status.StatusSummary(kind="EgressGroup", name="g", ready=True),
        [subjects.status(GROUP_REF), "tailwire.v1.status.egressgroup.a.b"],
    ),
    (
        nodes.NodePlan(node=ids.NodeName("node-a"), generation=1),
        [subjects.node_plan("node-a"), subjects.node_plan("n.with.dots")],
    ),
    (
        nodes.NodeAck(node=ids.NodeName("node-a"), generation=1),
        [subjects.node_ack("node-a"), subjects.node_ack("Ünï")],
    ),
    (
        gateways.GatewayConfig(
            group=ids.GroupName("g"),
            tailnet="t",
            generation=1,
            config=CONFIG_BODY,
            hash=gateways.config_hash(CONFIG_BODY),
        ),
        [subjects.gateway_config("g")],
    ),
    (
        keys.TailnetChecked(
            tailnet="lab",
            connected=True,
            reason="Connected",
            checked_at=datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC),
        ),
        [subjects.keys_tailnet("lab")],
    ),
    (
        keys.KeyReady(
            owner=OWNER,
            tailnet="-",
            secret_name="s",
            secret_namespace="tailwire-system",
            key_id="k1",
            expires_at=datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC),
            tags=("tag:k8s",),
        ),
        [subjects.keys_ready(GROUP_REF), subjects.keys_revoked(GROUP_REF)],
    ),
]
# Good bodies on key subjects the renderer cannot parse.
BAD_KEY_SUBJECTS = payloads.valid_body_on(
    [
        "tailwire.v1.keys.ready.egressgroup._.UPPER",
        "tailwire.v1.keys.ready.egressgroup._.~ZZ",
        "tailwire.v1.keys.ready.too.many.tokens.here",
    ],
    good=FEEDS[-1][0],
    why="unparseable key subject",
)


@pytest.fixture
async def renderer(
    bus_settings: tw_settings.BusSettings,
) -> AsyncIterator[handlers.Renderer]:
    async with helpers.running_renderer(bus_settings, apply_manifests=False) as running:
        await helpers.settled(running)
        yield running


@pytest.fixture
async def rejections(nats_client: Client) -> harness.Rejections:
    collected = harness.Rejections(nats_client, service="renderer")
    await collected.open()
    return collected


@settings(
    max_examples=6,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batch=payloads.batches(*FEEDS, size=10, extra=BAD_KEY_SUBJECTS))
async def test_every_hostile_message_is_dead_lettered_and_none_escapes(
    batch: list[payloads.Hostile],
    renderer: handlers.Renderer,
    rejections: harness.Rejections,
) -> None:
    with harness.error_log() as errors_seen:
        await rejections.check(batch)
    assert errors_seen.lines() == []


async def test_good_snapshots_still_make_a_plan_after_hostile_ones(
    bus_settings: tw_settings.BusSettings,
    renderer: handlers.Renderer,
    rejections: harness.Rejections,
) -> None:
    junk = [
        payloads.Hostile(subject=s, body=b, headers={}, why="junk")
        for s, b in [
            ("tailwire.v1.cluster.pod.payments.api-0", b"\xff\xfe"),
            (subjects.node_ack("node-a"), b'{"version": 2}'),
            ("tailwire.v1.keys.ready.egressgroup._.UPPER", FEEDS[-1][0].to_bytes()),
        ]
    ]
    await rejections.check(junk)
    async with helpers.producer(bus_settings) as broker:
        await helpers.publish(
            broker,
            helpers.namespace("payments"),
            helpers.node("node-a"),
            helpers.group("peers", helpers.PEERS_SPEC),
            helpers.pod("api-0", node_name="node-a"),
        )
        # The node may get a plan before the pod is read: wait for the member itself.
        await helpers.settled(
            renderer,
            lambda: any(
                m.name == "api-0"
                for m in getattr(renderer.published.plans.get("node-a"), "members", ())
            ),
        )
    assert [m.name for m in renderer.published.plans["node-a"].members] == ["api-0"]


async def test_an_ack_speaking_for_another_node_is_dead_lettered(
    renderer: handlers.Renderer, rejections: harness.Rejections
) -> None:
    """Issue 18 (low): node A's agent may publish on A's ack subject only (its NATS user), but
    the renderer keyed acks by the body's node, so A could speak for B."""
    forged = nodes.NodeAck(node=ids.NodeName("node-b"), generation=99)
    await rejections.check(
        [
            payloads.Hostile(
                subject=subjects.node_ack("node-a"),
                body=forged.to_bytes(),
                headers={},
                why="an ack for node-b on node-a's subject",
            )
        ]
    )
    assert "node-b" not in renderer.acks
