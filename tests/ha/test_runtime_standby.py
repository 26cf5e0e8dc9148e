"""`runtime.build_app(elected=True)`: a standby is connected and ready but starts neither its
subscribers nor its hooks until it holds the Lease; then it starts as a fresh service would."""

from __future__ import annotations

import asyncio
import datetime

import aiohttp
from faststream.nats import NatsRouter
from kubernetes_asyncio import client

from tailwire.shared import bus, leadership, runtime, settings, subjects, telemetry
from tailwire.shared.events import cluster
from tailwire.testing import kubeapi

NAMESPACE = "tailwire-system"


class Clock:
    def __init__(self) -> None:
        self.now = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)

    def __call__(self) -> datetime.datetime:
        return self.now


async def test_standby_is_ready_but_idle_until_it_leads(
    kube_emulator: kubeapi.KubeAPI, bus_settings: settings.BusSettings
) -> None:
    kube_emulator.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    clock = Clock()
    kube_emulator.create(
        {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": "tailwire-renderer", "namespace": NAMESPACE},
            "spec": {
                "holderIdentity": "the-other-replica",
                "leaseDurationSeconds": 10,
                "renewTime": "2026-01-01T00:00:00.000000Z",
            },
        }
    )

    async def open_client() -> client.ApiClient:
        return await kube_emulator.api_client()

    async def sleep(_: float) -> None:  # time moves only when the test says so
        await asyncio.sleep(0.01)

    elector = leadership.Elector(
        name="tailwire-renderer",
        namespace=NAMESPACE,
        identity="me",
        api_client_factory=open_client,
        clock=clock,
        sleep=sleep,
    )
    received: asyncio.Queue[str] = asyncio.Queue()
    started: list[str] = []
    router = NatsRouter()

    @router.subscriber(
        subjects.cluster_filter(subjects.Kind.POD), stream=bus.stream(bus.CLUSTER_STREAM)
    )
    async def on_pod(snapshot: cluster.PodSnapshot) -> None:
        await received.put(snapshot.meta.name)

    async def hook() -> None:
        started.append("work")

    service = runtime.build_app(
        service=subjects.Service.RENDERER,
        routers=[router],
        bus_settings=bus_settings,
        tracer_provider=telemetry.setup_tracing(
            service_name="standby-test", exporter="none", set_global=False
        ),
        on_startup=[hook],
        health_port=0,
        elected=True,
        elector=elector,
    )
    starting = asyncio.create_task(service.app.start())
    try:
        assert service.health is not None
        for _ in range(200):
            if service.health.ready:
                break
            await asyncio.sleep(0.02)
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{service.health.port}/readyz") as response,
        ):
            assert response.status == 200
        producer = bus.make_broker(service="watcher", bus=bus_settings)
        await producer.connect()
        pod = cluster.PodSnapshot(
            meta=cluster.Meta(uid="u", namespace="payments", name="api-0", resource_version="1"),
            node_name="node-a",
        )
        await bus.publish(producer, pod, subject=subjects.cluster(pod.ref))
        await producer.stop()
        # Standing by: several election rounds pass, and nothing has started.
        for _ in range(20):
            await asyncio.sleep(0.01)
        assert started == []
        assert received.empty()
        assert not starting.done()

        clock.now += datetime.timedelta(seconds=10.5)  # the other replica stopped renewing
        async with asyncio.timeout(10):
            await starting
        assert started == ["work"]
        assert elector.leading
        # The subscriber starts from the stream: what was published meanwhile is handled.
        async with asyncio.timeout(10):
            assert await received.get() == "api-0"
    finally:
        if not starting.done():
            starting.cancel()
        await service.app.stop()
    assert elector.lost.is_set()  # released on stop
    lease = kube_emulator.get(
        "leases.coordination.k8s.io", name="tailwire-renderer", namespace=NAMESPACE
    )
    assert lease is not None
    assert lease["spec"]["holderIdentity"] == ""
