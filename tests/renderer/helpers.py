"""Helpers of the renderer's bus tests: snapshots, a running renderer, waiting on it."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
from collections.abc import AsyncIterator, Callable
from typing import Any

from faststream.nats import NatsBroker
from nats.aio.client import Client
from opentelemetry.sdk.trace import TracerProvider

from tailwire.services.renderer import app, handlers
from tailwire.services.renderer.adapters import kube
from tailwire.services.renderer.egress import options, rendering, statuses
from tailwire.shared import bus, ids, settings, subjects, telemetry
from tailwire.shared.events import base, cluster, keys, nodes

OPTS = options.Options(cluster_cidrs=("10.244.0.0/16", "10.96.0.0/12"))


def namespace(name: str) -> cluster.NamespaceSnapshot:
    return cluster.NamespaceSnapshot(
        meta=cluster.Meta(uid=f"ns-{name}", name=name, resource_version="1")
    )


def node(name: str) -> cluster.NodeSnapshot:
    return cluster.NodeSnapshot(
        meta=cluster.Meta(uid=f"node-{name}", name=name, resource_version="1")
    )


def pod(
    name: str,
    *,
    ns: str = "payments",
    node_name: str,
    labels: dict[str, str] | None = None,
    rv: str = "1",
) -> cluster.PodSnapshot:
    return cluster.PodSnapshot(
        meta=cluster.Meta(
            uid=f"uid-{ns}-{name}",
            namespace=ns,
            name=name,
            resource_version=rv,
            labels={"tailgate.dev/egress": "true"} if labels is None else labels,
        ),
        node_name=node_name,
        phase="Running",
        pod_ips=("10.244.1.5",),
    )


def group(
    name: str,
    spec: dict[str, Any],
    *,
    generation: int = 1,
    uid: str | None = None,
    rv: str | None = None,
    **meta: Any,
) -> cluster.EgressGroupSnapshot:
    return cluster.EgressGroupSnapshot(
        meta=cluster.Meta(
            uid=uid or f"uid-eg-{name}",
            name=name,
            resource_version=rv or str(generation),
            generation=generation,
            **meta,
        ),
        api_version="tailscale.rajsingh.info/v1alpha1",
        spec=spec,
    )


PEERS_SPEC = {"selector": {"podSelector": {"matchLabels": {"tailgate.dev/egress": "true"}}}}


async def publish(broker: NatsBroker, *events: Any) -> None:
    for event in events:
        if isinstance(
            event,
            cluster.EgressGroupSnapshot
            | cluster.PodSnapshot
            | cluster.NodeSnapshot
            | cluster.NamespaceSnapshot,
        ):
            await bus.publish(
                broker, event, subject=subjects.cluster(event.ref), msg_id=event.dedup_id
            )
        else:
            raise TypeError(event)


@contextlib.asynccontextmanager
async def producer(bus_settings: settings.BusSettings) -> AsyncIterator[NatsBroker]:
    broker = bus.make_broker(service="watcher", bus=bus_settings)
    await bus.connect_and_declare(broker, bus=bus_settings)
    await broker.start()
    try:
        yield broker
    finally:
        await broker.stop()


@contextlib.asynccontextmanager
async def running_renderer(
    bus_settings: settings.BusSettings,
    *,
    kube_client_factory: kube.ClientFactory | None = None,
    apply_manifests: bool = True,
    tracer_provider: TracerProvider | None = None,
) -> AsyncIterator[handlers.Renderer]:
    built = app.build(
        bus_settings=bus_settings,
        opts=OPTS,
        kube_client_factory=kube_client_factory,
        apply_manifests=apply_manifests,
        tracer_provider=tracer_provider
        or telemetry.setup_tracing(service_name="renderer", exporter="none", set_global=False),
    )
    service = built.runtime
    await service.app.start()
    try:
        yield built.renderer
    finally:
        await service.app.stop()


async def settled(
    renderer: handlers.Renderer, until: Callable[[], bool] = lambda: True, *, within: float = 10.0
) -> None:
    """Wait until `until()` holds and the renderer has acted on everything it received."""
    async with asyncio.timeout(within):
        while not (  # noqa: ASYNC110 (several conditions, some without an event)
            renderer.caught_up.is_set()
            and renderer.reconciled > 0
            and renderer.idle.is_set()
            and until()
        ):
            await asyncio.sleep(0.01)


async def last_sequences(nc: Client) -> dict[str, int]:
    js = nc.jetstream()
    return {
        name: (await js.stream_info(name)).state.last_seq
        for name in (bus.CLUSTER_STREAM, bus.NODES_STREAM, bus.WORK_STREAM)
    }


def unreachable_api(tmp_kubeconfig: Any) -> kube.ClientFactory:
    from tailwire.testing import kubeapi

    path = kubeapi.write_kubeconfig(tmp_kubeconfig, server="http://127.0.0.1:9")

    async def factory() -> Any:
        return await kubeapi.new_api_client(path)

    return factory


def conditions_on_node_a(
    v: Any, group: str, *, now: datetime.datetime
) -> dict[str, base.Condition]:
    """The conditions of `group` rendered from view `v`, its key issued and node-a's plan
    acked: what the status says once nothing is pending."""
    result = rendering.render_egress(view=v, opts=OPTS).groups[group]
    key = keys.KeyReady(
        owner=rendering.owner_ref(result.group), tailnet="-", secret_name="s",
        secret_namespace="tailwire-system", key_id="k1", tags=("tag:k8s",),
        expires_at=now + datetime.timedelta(days=90),
    )  # fmt: skip
    status = statuses.group_status(
        result=result,
        key=key,
        plan_generations={"node-a": 0},
        acks={"node-a": nodes.NodeAck(node=ids.NodeName("node-a"), generation=0)},
        now=now,
    )
    return {c.type: c for c in status.conditions}
