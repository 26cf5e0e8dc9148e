"""Wiring of the dnsupdater: settings -> backends -> reconciler -> router -> lifespan.

With no zone and no annotation management configured the service starts, says so, and
idles. Backends that need an API client (Kubernetes, the control API) get it on start-up
and close it on shutdown; the reconcile loop starts once the streams are declared and stops
before the broker closes. No logic lives here.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable

import httpx
from kubernetes_asyncio import client as k8s
from opentelemetry.sdk.trace import TracerProvider

from tailwire.services.dnsupdater import config, handlers, reconciling, views
from tailwire.services.dnsupdater.adapters import coredns, kube, rfc2136, tailscale_api
from tailwire.services.dnsupdater.domain import corefiles
from tailwire.shared import bus, cancelling, errors, runtime, settings, subjects
from tailwire.shared.events import dns as dns_events
from tailwire.shared.k8s import client as k8s_client

log = logging.getLogger(__name__)

ApiClientFactory = Callable[[settings.KubernetesSettings], Awaitable[k8s.ApiClient]]
# How long the view may wait for a kind whose last snapshot never validates.
SYNC_GRACE = 30.0


@dataclasses.dataclass(kw_only=True)
class Wired:
    runtime: runtime.ServiceRuntime
    view: views.ClusterView
    reconciler: reconciling.Reconciler | None


@dataclasses.dataclass(kw_only=True)
class _Resources:
    api_client: k8s.ApiClient | None = None
    http: httpx.AsyncClient | None = None
    tasks: list[asyncio.Task[None]] = dataclasses.field(default_factory=list)


def _build_targets(
    dns: config.DnsUpdaterSettings, *, writer: kube.KubeWriter | None
) -> list[reconciling.ZoneTarget]:
    targets: list[reconciling.ZoneTarget] = []
    resolver: coredns.ResolverBackend | None = None
    if writer is not None and dns.zones_with(config.Backend.COREDNS):
        namespace, name = dns.resolver_ref()
        resolver = coredns.ResolverBackend(
            writer=writer,
            namespace=namespace,
            configmap=name,
            zones=[(z.zone, z.ttl) for z in dns.zones_with(config.Backend.COREDNS)],
            mount_path=dns.resolver_mount_path,
        )
    for zone in dns.zones:
        if config.Backend.RFC2136 in zone.backends:
            backend = rfc2136.Rfc2136Backend(
                server=zone.server or dns.rfc2136_server,
                port=zone.port or dns.rfc2136_port,
                key_name=dns.tsig_key_name or "",
                key_secret=dns.tsig_secret_value(),
                key_algorithm=dns.tsig_algorithm,
                timeout=dns.timeout,
            )
            targets.append(reconciling.ZoneTarget(zone=zone, backend=backend))
        if resolver is not None and config.Backend.COREDNS in zone.backends:
            targets.append(reconciling.ZoneTarget(zone=zone, backend=resolver))
    return targets


def _build_ensurers(
    dns: config.DnsUpdaterSettings,
    *,
    writer: kube.KubeWriter | None,
    targets: list[reconciling.ZoneTarget],
    http: httpx.AsyncClient | None,
    tailscale: settings.TailscaleSettings,
) -> list[reconciling.Ensurer]:
    ensurers: list[reconciling.Ensurer] = []
    for target in targets:
        if isinstance(target.backend, coredns.ResolverBackend) and target.backend not in ensurers:
            ensurers.append(target.backend)
    coredns_ref, service_ref = dns.coredns_ref(), dns.internal_service_ref()
    if writer is not None and coredns_ref and service_ref:
        block = corefiles.render_rewrite_block(
            zones=[z.zone for z in dns.zones],
            internal_service=service_ref[1],
            namespace=service_ref[0],
            cluster_domain=dns.cluster_domain,
        )
        ensurers.append(
            coredns.RewriteBlock(
                writer=writer, namespace=coredns_ref[0], configmap=coredns_ref[1], block=block
            )
        )
    split_zones = dns.zones_with(config.Backend.TAILSCALE)
    if split_zones and http is not None:
        if not tailscale.tailscale_oauth_client_id or not tailscale.tailscale_oauth_client_secret:
            raise errors.ConfigurationError(
                "tailscale_oauth_client_id/secret: required for the tailscale split-DNS backend"
            )
        ensurers.append(
            tailscale_api.SplitDns(
                http=http,
                tailnet=tailscale.tailscale_tailnet,
                client_id=tailscale.tailscale_oauth_client_id,
                client_secret=tailscale.tailscale_oauth_client_secret,
                zones=[(z.zone, z.nameservers) for z in split_zones],
            )
        )
    return ensurers


async def _k8s_api_client(kube_settings: settings.KubernetesSettings) -> k8s.ApiClient:
    return await k8s_client.api_client(kube_settings)


def wire(
    *,
    bus_settings: settings.BusSettings | None = None,
    tracer_provider: TracerProvider | None = None,
    dns_settings: config.DnsUpdaterSettings | None = None,
    kube_settings: settings.KubernetesSettings | None = None,
    tailscale_settings: settings.TailscaleSettings | None = None,
    api_client_factory: ApiClientFactory = _k8s_api_client,
    ticker: reconciling.Ticker | None = None,
    health_port: int | None = None,
) -> Wired:
    """The runtime, its view and its reconciler (tests hold them to drive or inspect)."""
    dns = dns_settings or config.DnsUpdaterSettings()
    tailscale = tailscale_settings or settings.TailscaleSettings()
    view = views.ClusterView()
    resources = _Resources()
    if dns.idle:

        async def say_idle() -> None:
            log.info("dnsupdater: no zone is configured (TAILWIRE_DNS_ZONES); idling")

        idle_runtime = runtime.build_app(
            service=subjects.Service.DNSUPDATER,
            bus_settings=bus_settings,
            tracer_provider=tracer_provider,
            after_startup=[say_idle],
            health_port=health_port,
        )
        return Wired(runtime=idle_runtime, view=view, reconciler=None)

    brokers: list[runtime.ServiceRuntime] = []

    async def publish(event: dns_events.DnsChanged) -> None:
        await bus.publish(brokers[0].broker, event, subject=subjects.dns_changed(event.zone))

    reconciler = reconciling.Reconciler(
        view=view,
        targets=[],
        publish=publish,
        ticker=ticker or reconciling.IntervalTicker(interval=dns.repair_interval),
    )

    async def open_backends() -> None:
        writer = None
        if dns.needs_kubernetes:
            resources.api_client = await api_client_factory(
                kube_settings or settings.KubernetesSettings()
            )
            writer = kube.KubeWriter(api_client=resources.api_client)
        if dns.zones_with(config.Backend.TAILSCALE):
            resources.http = httpx.AsyncClient(
                base_url=tailscale.tailscale_api_url, timeout=dns.timeout
            )
        reconciler.tracer = brokers[0].tracer_provider.get_tracer("tailwire.dnsupdater")
        targets = _build_targets(dns, writer=writer)
        reconciler.targets = targets
        reconciler.ensurers = _build_ensurers(
            dns, writer=writer, targets=targets, http=resources.http, tailscale=tailscale
        )
        if dns.external_dns and writer is not None:
            reconciler.annotation_policy = reconciling.AnnotationPolicy(
                writer=writer,
                prefix=dns.annotation_prefix,
                split_hostnames=dns.split_horizon_hostnames,
            )
        log.info(
            "dnsupdater: zones %s; external-dns annotations %s",
            ", ".join(f"{t.zone.zone} ({t.backend.name})" for t in targets) or "none",
            "managed" if reconciler.annotation_policy else "not managed",
        )

    async def start_reconciling() -> None:
        connection = brokers[0].broker.config.connection_state.connection
        await handlers.mark_empty_kinds(js=connection.jetstream(), view=view, reconciler=reconciler)
        resources.tasks.append(asyncio.create_task(reconciler.run(), name="dns-reconcile"))
        resources.tasks.append(asyncio.create_task(_sync_grace(view, reconciler)))

    async def stop_reconciling() -> None:
        await cancelling.cancel_and_wait(resources.tasks)
        if resources.http is not None:
            await resources.http.aclose()
        if resources.api_client is not None:
            await resources.api_client.close()

    service_runtime = runtime.build_app(
        service=subjects.Service.DNSUPDATER,
        routers=[handlers.build_router(view=view, reconciler=reconciler)],
        bus_settings=bus_settings,
        tracer_provider=tracer_provider,
        on_startup=[open_backends],
        after_startup=[start_reconciling],
        on_shutdown=[stop_reconciling],
        health_port=health_port,
        elected=True,
    )
    brokers.append(service_runtime)
    return Wired(runtime=service_runtime, view=view, reconciler=reconciler)


async def _sync_grace(view: views.ClusterView, reconciler: reconciling.Reconciler) -> None:
    """A kind whose last snapshot was dead-lettered never reports caught up: stop waiting."""
    await asyncio.sleep(SYNC_GRACE)
    if not view.synced:
        log.warning("dnsupdater: view not caught up after %.0f s; reconciling anyway", SYNC_GRACE)
        for kind in views.KINDS:
            view.caught_up(kind)
        reconciler.notify()


def create(
    *,
    bus_settings: settings.BusSettings | None = None,
    tracer_provider: TracerProvider | None = None,
) -> runtime.ServiceRuntime:
    """The dnsupdater's runtime, from `TAILWIRE_*` settings unless given."""
    return wire(bus_settings=bus_settings, tracer_provider=tracer_provider).runtime
