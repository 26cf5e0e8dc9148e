"""The HA overlay's bus: on a 3-server NATS JetStream cluster, `TAILWIRE_STREAM_REPLICAS=3`
makes `bus.declare_streams` create every stream with three replicas, and a publish still gets
its ack, and is readable, after one server is killed."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import nats
import nats.errors
import nats.js.errors

from tailwire.shared import bus, errors, settings, subjects
from tailwire.shared.events import cluster
from tailwire.testing import natsserver


@contextlib.contextmanager
def nats_cluster(root: Path, size: int = 3) -> Iterator[list[natsserver.NatsServer]]:
    route_ports = [natsserver.free_port() for _ in range(size)]
    servers = []
    for i in range(size):
        routes = ", ".join(f"nats-route://127.0.0.1:{p}" for p in route_ports)
        store = root / f"n{i}"
        config = (
            f'server_name: "n{i}"\n'
            f'jetstream {{ store_dir: "{store / "jetstream"}" }}\n'
            f'cluster {{ name: "tailwire", listen: "127.0.0.1:{route_ports[i]}", '
            f"routes: [{routes}] }}\n"
        )
        servers.append(natsserver.NatsServer(store_dir=store, config_text=config))
    with natsserver.all_running(servers, kill=True):
        yield servers


async def declared(bus_settings: settings.BusSettings) -> None:
    """Declare the streams once the cluster has elected its JetStream meta leader."""
    broker = bus.make_broker(service="renderer", bus=bus_settings)
    deadline = time.monotonic() + 30
    try:
        while True:
            try:
                await bus.connect_and_declare(broker, bus=bus_settings)
                return
            except (nats.js.errors.Error, nats.errors.Error):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.25)
    finally:
        await broker.stop()


async def test_streams_get_three_replicas_and_survive_a_killed_server(tmp_path: Path) -> None:
    with nats_cluster(tmp_path) as servers:
        bus_settings = settings.BusSettings(nats_url=servers[0].url, stream_replicas=3)
        await declared(bus_settings)

        client = await nats.connect(servers[0].url)
        try:
            js = client.jetstream()
            for name in (bus.CLUSTER_STREAM, bus.NODES_STREAM, bus.WORK_STREAM):
                deadline = time.monotonic() + 15
                while True:  # the peers join the stream's group within moments of its creation
                    info = await js.stream_info(name)
                    peers = info.cluster.replicas if info.cluster is not None else None
                    if len(peers or []) == 2 or time.monotonic() > deadline:
                        break
                    await asyncio.sleep(0.1)
                assert info.config.num_replicas == 3
                assert len(peers or []) == 2, info.cluster

            servers[2].stop(kill=True)  # one of three: the streams keep their quorum

            snapshot = cluster.PodSnapshot(
                meta=cluster.Meta(
                    uid="u1", namespace="payments", name="api-0", resource_version="1"
                ),
                node_name="node-a",
                phase="Running",
            )
            broker = bus.make_broker(service="watcher", bus=bus_settings)
            await broker.connect()
            await broker.start()
            try:
                deadline = time.monotonic() + 30
                while True:  # a stream whose leader was killed elects another within seconds
                    try:
                        await bus.publish(broker, snapshot, subject=subjects.cluster(snapshot.ref))
                        break
                    except errors.BusError:
                        if time.monotonic() > deadline:
                            raise
                        await asyncio.sleep(0.25)
            finally:
                await broker.stop()
            stored = await js.get_last_msg(bus.CLUSTER_STREAM, subjects.cluster(snapshot.ref))
            assert stored.data == snapshot.to_bytes()
        finally:
            await client.close()
