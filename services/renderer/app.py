"""Wiring of the renderer: settings -> broker -> routers -> lifespan. No logic lives here."""

from __future__ import annotations

import dataclasses

from kubernetes_asyncio import client
from opentelemetry.sdk.trace import TracerProvider

from tailwire.services.renderer import handlers, renderers
from tailwire.services.renderer.adapters import kube, syncing
from tailwire.services.renderer.egress import options
from tailwire.shared import runtime, settings, subjects
from tailwire.shared.events import base
from tailwire.shared.k8s import client as k8s_client


@dataclasses.dataclass(kw_only=True)
class RendererRuntime:
    runtime: runtime.ServiceRuntime
    renderer: handlers.Renderer


def default_options() -> options.Options:
    network = settings.ClusterNetworkSettings()
    kube_settings = settings.KubernetesSettings()
    return options.Options(
        gateway_namespace=kube_settings.namespace,
        cluster_cidrs=tuple(network.cluster_cidrs),
        link_cidr_v4=network.link_cidr_v4,
        link_cidr_v6=network.link_cidr_v6,
        exit_node_table=network.exit_node_table,
        cluster_name=network.cluster_name,
        gateway_image=settings.GatewaySettings().gateway_image,
        control_url=settings.TailscaleSettings().tailscale_control_url,
    )


def build(
    *,
    bus_settings: settings.BusSettings | None = None,
    tracer_provider: TracerProvider | None = None,
    opts: options.Options | None = None,
    kube_client_factory: kube.ClientFactory | None = None,
    apply_manifests: bool = True,
    clock: handlers.Clock | None = None,
    health_port: int | None = None,
) -> RendererRuntime:
    """The renderer and its runtime; tests pass their own Kubernetes client factory."""
    bus_settings = bus_settings or settings.BusSettings()
    opts = opts or default_options()
    kube_settings = settings.KubernetesSettings()

    async def default_factory() -> client.ApiClient:
        return await k8s_client.api_client(kube_settings)

    sync = None
    if apply_manifests:
        writer = kube.KubeWriter(client_factory=kube_client_factory or default_factory)
        sync = syncing.ManifestSync(writer=writer)
    # The broker exists only once build_app made it; the renderer reaches it through the box.
    box: list[handlers.Renderer] = []

    async def measure_backlog() -> None:
        await box[0].measure_backlog()

    async def start() -> None:
        await box[0].start()

    async def stop() -> None:
        await box[0].stop()

    service_runtime = runtime.build_app(
        service=subjects.Service.RENDERER,
        bus_settings=bus_settings,
        tracer_provider=tracer_provider,
        on_startup=[measure_backlog],
        after_startup=[start],
        on_shutdown=[stop],
        health_port=health_port,
        elected=True,
    )
    renderer = handlers.Renderer(
        broker=service_runtime.broker,
        opts=opts,
        sync=sync,
        clock=clock or base.utcnow,
        computations=renderers.live(),
        tombstone_ttl=bus_settings.tombstone_ttl,
    )
    box.append(renderer)
    service_runtime.broker.include_router(renderer.router())
    return RendererRuntime(runtime=service_runtime, renderer=renderer)


def create(
    *,
    bus_settings: settings.BusSettings | None = None,
    tracer_provider: TracerProvider | None = None,
) -> runtime.ServiceRuntime:
    """The renderer's runtime, from `TAILWIRE_*` settings unless given."""
    return build(bus_settings=bus_settings, tracer_provider=tracer_provider).runtime
