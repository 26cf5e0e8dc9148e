"""Issue 18, finding 3: with the NATS credentials `tailwire nats-config` generates, a central
service's user can do no JetStream request beyond what its own consumers and start-up need.

On a real nats-server with the generated configuration: the watcher's password (the attack of
the issue) can no longer purge TAILWIRE_NODES, delete a stream, read TAILWIRE_WORK through a
consumer of its own or by listening on other services' inboxes, or `STREAM.UPDATE`
TAILWIRE_WORK with a `sources` entry that turns its own snapshots into key requests. No user
but the streams' owner (the renderer) may create or update a stream, and nobody may delete or
purge one. A refused request gets no reply (nats-py times out) and the server tells the
client why, which is what is checked, with the streams found intact afterwards."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Iterator
from pathlib import Path

import nats
import nats.errors
import nats.js.errors
import pydantic
import pytest
from nats.aio.client import Client
from nats.js import api

from tailwire.shared import bus, ids, permissions, settings, subjects
from tailwire.shared.events import base, keys, nodes
from tailwire.shared.k8s import names
from tailwire.testing import natsserver
from tailwire.testing.system import buses

CENTRAL = ("watcher", "keyminter", "renderer", "dnsupdater")
# Without --nodes, one `nodeagent` user shared by every node (see permissions.for_any_node).
PASSWORDS = {user: f"{user}-pass" for user in (*CENTRAL, "nodeagent")}
NODE = "node-a"
ADMIN_PASSWORD = "admin-pass"
OWNER = subjects.ObjectRef(kind=subjects.Kind.EGRESSGROUP, namespace=None, name="payments")


class Connected:
    """One user's connection, and what the server told it it may not do."""

    def __init__(self, client: Client, violations: list[str]) -> None:
        self.client = client
        self.violations = violations
        self.js = client.jetstream(timeout=1.0)

    def refused(self, what: str) -> bool:
        return any(
            f"permissions violation for {what}".lower() in v.lower() for v in self.violations
        )


@pytest.fixture
def secured_nats(tmp_path: Path) -> Iterator[natsserver.NatsServer]:
    port = natsserver.free_port()
    config = permissions.render_nats_config(
        passwords=PASSWORDS, listen=f"127.0.0.1:{port}", store_dir=str(tmp_path / "js")
    )
    # Plus an all-seeing user, only to check the streams from the outside.
    config = buses.with_admin(config, password=ADMIN_PASSWORD)
    server = natsserver.NatsServer(store_dir=tmp_path, port=port, config_text=config)
    server.start()
    yield server
    server.stop()


async def _connect(server: natsserver.NatsServer, user: str) -> Connected:
    violations: list[str] = []

    async def on_error(exc: Exception) -> None:
        violations.append(str(exc))

    # Each central service reads replies on its own inbox prefix (the shared nodeagent user
    # on `_INBOX`).
    prefix = bus.service_inbox_prefix(subjects.Service(user)) if user in CENTRAL else "_INBOX"
    client = await nats.connect(
        server.url,
        user=user,
        password=PASSWORDS[user],
        error_cb=on_error,
        inbox_prefix=prefix,
        allow_reconnect=False,
    )
    return Connected(client, violations)


@pytest.fixture
async def renderer(secured_nats: natsserver.NatsServer) -> AsyncIterator[Connected]:
    """The owner: the streams declared, a plan and a key request on them."""
    owner = await _connect(secured_nats, "renderer")
    js = owner.client.jetstream()
    await bus.declare_streams(js, bus=settings.BusSettings())
    plan = nodes.NodePlan(node=ids.NodeName(NODE), generation=1)
    await js.publish(subjects.node_plan(NODE), plan.to_bytes())
    await js.publish(subjects.keys_request(OWNER), _key_request().to_bytes())
    yield owner
    await owner.client.close()


def _key_request(*, revoke: bool = False) -> keys.KeyRequest:
    return keys.KeyRequest(
        owner=base.OwnerRef(
            api_version="tailscale.rajsingh.info/v1alpha1",
            kind="EgressGroup",
            name=OWNER.name,
            uid="0b7c2d9e-0000-4000-8000-000000000001",
        ),
        tags=("tag:k8s",),
        hostname_prefix=names.hostname_prefix(OWNER.name),
        secret_name=names.authkey_secret(OWNER.name),
        secret_namespace="tailwire-system",
        revoke=revoke,
    )


async def _refused(user: Connected, request: str, call: Awaitable[object]) -> None:
    with pytest.raises((nats.errors.TimeoutError, nats.js.errors.Error)):
        await call
    await user.client.flush()
    await asyncio.sleep(0.05)
    assert user.refused(f'publish to "{request}'), user.violations


async def _streams_intact(server: natsserver.NatsServer) -> None:
    admin = await nats.connect(server.url, user=buses.ADMIN_USER, password=ADMIN_PASSWORD)
    try:
        js = admin.jetstream()
        names_ = {str(info.config.name) for info in await js.streams_info()}
        assert names_ == {spec.name for spec in bus.STREAMS}
        assert (await js.stream_info(bus.NODES_STREAM)).state.messages == 1
        work = await js.stream_info(bus.WORK_STREAM)
        assert work.state.messages == 1
        assert not work.config.sources
        cluster = await js.stream_info(bus.CLUSTER_STREAM)
        assert cluster.config.description != "changed"
    finally:
        await admin.close()


@pytest.mark.usefixtures("renderer")
async def test_the_watchers_password_can_no_longer_wreck_the_streams(
    secured_nats: natsserver.NatsServer, renderer: Connected
) -> None:
    watcher = await _connect(secured_nats, "watcher")
    js = watcher.js
    try:
        await _refused(
            watcher,
            f"$JS.API.STREAM.PURGE.{bus.NODES_STREAM}",
            js.purge_stream(bus.NODES_STREAM),
        )
        await _refused(
            watcher,
            f"$JS.API.STREAM.DELETE.{bus.WORK_STREAM}",
            js.delete_stream(bus.WORK_STREAM),
        )
        # The forged-key-request route: TAILWIRE_WORK sourcing TAILWIRE_CLUSTER, with the
        # watcher's own subject renamed to a key request's.
        config = (await renderer.client.jetstream().stream_info(bus.WORK_STREAM)).config
        config.sources = [
            api.StreamSource(
                name=bus.CLUSTER_STREAM,
                subject_transforms=[
                    api.SubjectTransform(
                        src=subjects.cluster(OWNER), dest=subjects.keys_request(OWNER)
                    )
                ],
            )
        ]
        await _refused(
            watcher,
            f"$JS.API.STREAM.UPDATE.{bus.WORK_STREAM}",
            js.update_stream(config),
        )
        await js.publish(subjects.cluster(OWNER), _key_request(revoke=True).to_bytes())
    finally:
        await watcher.client.close()
    await _streams_intact(secured_nats)


@pytest.mark.usefixtures("renderer")
async def test_the_watchers_password_cannot_read_the_work_stream(
    secured_nats: natsserver.NatsServer,
) -> None:
    watcher = await _connect(secured_nats, "watcher")
    js = watcher.js
    try:
        # A consumer of its own, ephemeral (server-named) or named with a filter.
        await _refused(
            watcher,
            f"$JS.API.CONSUMER.CREATE.{bus.WORK_STREAM}",
            js.add_consumer(bus.WORK_STREAM, api.ConsumerConfig(ack_policy=api.AckPolicy.NONE)),
        )
        await _refused(
            watcher,
            f"$JS.API.CONSUMER.CREATE.{bus.WORK_STREAM}.{permissions.WATCHER_RECALL_CONSUMER}",
            js.add_consumer(
                bus.WORK_STREAM,
                api.ConsumerConfig(
                    name=permissions.WATCHER_RECALL_CONSUMER, filter_subject=subjects.keys_filter()
                ),
            ),
        )
        # The keyminter's durable consumer: neither pulled from nor looked at.
        name = permissions.KEYMINTER_REQUESTS_CONSUMER
        await _refused(
            watcher,
            f"$JS.API.CONSUMER.INFO.{bus.WORK_STREAM}.{name}",
            js.consumer_info(bus.WORK_STREAM, name),
        )
        # Single messages, through the stream or its direct-get API.
        await _refused(
            watcher,
            f"$JS.API.STREAM.MSG.GET.{bus.WORK_STREAM}",
            js.get_msg(bus.WORK_STREAM, seq=1),
        )
        await _refused(
            watcher,
            f"$JS.API.DIRECT.GET.{bus.WORK_STREAM}",
            js.get_msg(bus.WORK_STREAM, seq=1, direct=True),
        )
        # Nor may it listen where other services' pulled and pushed messages arrive.
        for inbox in ("_INBOX.>", f"{bus.service_inbox_prefix(subjects.Service.KEYMINTER)}.>"):
            await watcher.client.subscribe(inbox)
        await watcher.client.flush()
        await asyncio.sleep(0.1)
        assert watcher.refused('subscription to "_inbox.>'), watcher.violations
        assert watcher.refused(
            f'subscription to "{bus.service_inbox_prefix(subjects.Service.KEYMINTER)}.>'
        ), watcher.violations
    finally:
        await watcher.client.close()


@pytest.mark.usefixtures("renderer")
@pytest.mark.parametrize("user", ["watcher", "keyminter", "dnsupdater", "nodeagent"])
async def test_only_the_owner_may_create_or_update_a_stream(
    secured_nats: natsserver.NatsServer, renderer: Connected, user: str
) -> None:
    other = await _connect(secured_nats, user)
    try:
        config = (await renderer.client.jetstream().stream_info(bus.CLUSTER_STREAM)).config
        config.description = "changed"
        await _refused(
            other,
            f"$JS.API.STREAM.UPDATE.{bus.CLUSTER_STREAM}",
            other.js.update_stream(config),
        )
        await _refused(
            other,
            "$JS.API.STREAM.CREATE.EXTRA",
            other.js.add_stream(name="EXTRA", subjects=["extra.>"]),
        )
    finally:
        await other.client.close()
    await _streams_intact(secured_nats)


@pytest.mark.parametrize("user", [*CENTRAL, "nodeagent"])
async def test_nobody_may_delete_or_purge_a_stream(
    secured_nats: natsserver.NatsServer, renderer: Connected, user: str
) -> None:
    someone = renderer if user == "renderer" else await _connect(secured_nats, user)
    try:
        for stream in (bus.NODES_STREAM, bus.WORK_STREAM):
            await _refused(
                someone,
                f"$JS.API.STREAM.PURGE.{stream}",
                someone.js.purge_stream(stream),
            )
        await _refused(
            someone,
            f"$JS.API.STREAM.DELETE.{bus.NODES_STREAM}",
            someone.js.delete_stream(bus.NODES_STREAM),
        )
    finally:
        if someone is not renderer:
            await someone.client.close()
    await _streams_intact(secured_nats)


def _wildcards(tokens: list[str]) -> set[str]:
    return {"*", ">"} & set(tokens)


def _checked(publish: tuple[str, ...], *, consumer_names_exact: bool) -> None:
    for subject in publish:
        tokens = subject.split(".")
        if subject.startswith("$JS.API."):
            # `$JS.API.<STREAM|CONSUMER>.<request>.<stream>[.<consumer>[.<filter>]]`
            head = 6 if tokens[2:4] == ["CONSUMER", "MSG"] else 5
            exact = tokens[: head + 1] if consumer_names_exact else tokens[:head]
            assert not _wildcards(exact), subject
        elif subject.startswith(("$JS.ACK.", "$JS.FC.")):
            assert not _wildcards(tokens[:3]), subject  # the stream is always named
        else:
            assert not subject.startswith("$"), subject


def test_no_user_is_granted_a_wildcard_over_the_jetstream_api() -> None:
    """The table itself: no `$JS.API.>`; every API request names its stream and, but for the
    shared nodeagent user (whose consumer names are made from the node), its consumer. A
    wildcard stands for a consumer name only where the server generates it (`$JS.ACK`,
    `$JS.FC` of push consumers)."""
    for user in CENTRAL:
        _checked(permissions.for_service(subjects.Service(user)).publish, consumer_names_exact=True)
    _checked(permissions.for_node(NODE).publish, consumer_names_exact=True)
    _checked(permissions.for_any_node().publish, consumer_names_exact=False)


async def test_a_nodeagent_cannot_list_the_nodes_and_groups_of_the_plans_stream(
    secured_nats: natsserver.NatsServer, renderer: Connected
) -> None:
    """Issue 18, low: `STREAM.INFO` with a `subjects_filter` lists every subject of
    TAILWIRE_NODES with its count, that is every node and group. A nodeagent (the shared user
    here; a per-node user has the same list, see `test_no_user...`) may not send it: it sees
    the stream through its own plan consumer (`bus.connect_and_wait`, `probes`)."""
    agent = await _connect(secured_nats, "nodeagent")
    try:
        await _refused(
            agent,
            f"$JS.API.STREAM.INFO.{bus.NODES_STREAM}",
            agent.js.stream_info(bus.NODES_STREAM, subjects_filter=">"),
        )
    finally:
        await agent.client.close()
    for granted in (permissions.for_node(NODE), permissions.for_any_node()):
        assert not [s for s in granted.publish if ".STREAM." in s]


async def test_a_nodeagent_waits_for_the_plans_stream_through_its_consumer(
    secured_nats: natsserver.NatsServer,
) -> None:
    """Without `STREAM.INFO`, the wait on start reads the stream through the plan consumer's
    info: "consumer not found" means the stream is there, "stream not found" that it is not."""
    node_settings = settings.BusSettings(
        nats_url=secured_nats.url,
        nats_user="nodeagent",
        nats_password=pydantic.SecretStr("nodeagent-pass"),
    )
    agent = bus.make_broker(
        service=subjects.Service.NODEAGENT, bus=node_settings, inbox_prefix="_INBOX"
    )
    probes = {bus.NODES_STREAM: permissions.plan_consumer(NODE)}
    try:
        waiting = asyncio.create_task(
            bus.connect_and_wait(
                agent, bus=node_settings, streams=(bus.NODES_STREAM,), probes=probes, poll=0.05
            )
        )
        await asyncio.sleep(0.5)
        assert not waiting.done()  # no stream yet: still waiting
        owner = await _connect(secured_nats, "renderer")
        try:
            await bus.declare_streams(owner.client.jetstream(), bus=settings.BusSettings())
            async with asyncio.timeout(5):
                await waiting
        finally:
            await owner.client.close()
    finally:
        await agent.stop()
