"""Wiring of the keyminter: settings -> adapters -> minter -> router -> lifespan. No logic here.

Starts without any credentials: it then logs that no default tailnet is configured and
answers requests for it with `keys.failed` naming the missing setting. Kubernetes access is
opened on first use, so a missing kubeconfig fails requests, not the process.
"""

from __future__ import annotations

import asyncio
import logging
import random

from kubernetes_asyncio import client
from opentelemetry.sdk.trace import TracerProvider

from tailwire.services.keyminter import (
    busauth,
    buscredentials,
    checking,
    configuration,
    domain,
    handlers,
    minting,
)
from tailwire.services.keyminter.adapters import secrets, tailnets, timing, tokenreview
from tailwire.shared import bus, cancelling, errors, runtime, settings, subjects
from tailwire.shared.events import keys
from tailwire.shared.k8s import client as k8s_client

log = logging.getLogger(__name__)


def create(
    *,
    bus_settings: settings.BusSettings | None = None,
    tracer_provider: TracerProvider | None = None,
    keyminter_settings: configuration.KeyminterSettings | None = None,
    bus_auth_settings: configuration.BusAuthSettings | None = None,
    tailscale_settings: settings.TailscaleSettings | None = None,
    kube_settings: settings.KubernetesSettings | None = None,
    api_client: secrets.ApiClientFactory | None = None,
    http: tailnets.HttpFactory = tailnets.default_http,
    clock: timing.Clock | None = None,
    sleep: timing.Sleeper = timing.real_sleep,
) -> runtime.ServiceRuntime:
    """The keyminter's runtime, from `TAILWIRE_*` settings unless given."""
    km = keyminter_settings or configuration.KeyminterSettings()
    tailscale = tailscale_settings or settings.TailscaleSettings()
    kube = kube_settings or settings.KubernetesSettings()
    clock = clock or timing.SystemClock()
    opened: list[client.ApiClient] = []

    async def open_api_client() -> client.ApiClient:
        if not opened:
            opened.append(await k8s_client.api_client(kube))
        return opened[0]

    factory = api_client or open_api_client
    directory = tailnets.Tailnets(
        tailscale=tailscale,
        kube=kube,
        api_client=factory,
        clock=clock,
        sleep=sleep,
        backoff=domain.Backoff(
            base=km.backoff_base_seconds, cap=km.backoff_cap_seconds, attempts=km.retry_attempts
        ),
        rate=km.rate_per_second,
        burst=km.rate_burst,
        http=http,
        rng=random.Random(),
    )
    minter = minting.Minter(
        store=secrets.SecretStore(factory, namespace=kube.namespace),
        tailnets=directory,
        clock=clock,
        policy=minting.Policy(
            renewal_fraction=km.renewal_fraction, key_expiry_seconds=km.key_expiry_seconds
        ),
    )
    work = handlers.KeyWork(minter=minter)
    bus_auth = _bus_auth(
        bus_auth_settings or configuration.BusAuthSettings(),
        api_client=factory,
        namespace=kube.namespace,
        clock=clock,
    )
    tasks: list[asyncio.Task[None]] = []
    holder: list[runtime.ServiceRuntime] = []

    async def publish_check(event: keys.TailnetChecked) -> None:
        await bus.publish(
            holder[0].broker,
            event,
            subject=subjects.keys_tailnet(event.tailnet),
            msg_id=f"tailnet:{event.tailnet}:{event.checked_at.isoformat()}",
        )

    checker = checking.TailnetChecker(
        directory=directory,
        clock=clock,
        publish=publish_check,
        interval=km.tailnet_check_seconds,
        heartbeat=km.tailnet_heartbeat_seconds,
    )

    async def announce() -> None:
        if directory.default_configured:
            log.info("keyminter: default tailnet %r configured", tailscale.tailscale_tailnet)
        else:
            log.warning("keyminter: %s", tailnets.MISSING_DEFAULT)

    async def renewing() -> None:
        # A pass at once (keys may have come due while no keyminter ran), then periodically.
        while True:
            try:
                renewed = await work.renew_due(broker=holder[0].broker)
                if renewed:
                    log.info("keyminter: renewed %d key(s)", renewed)
            except errors.TailwireError as exc:
                log.warning("keyminter: renewal pass failed: %s", exc)
            except Exception as exc:  # noqa: BLE001 (the loop must outlive one bad pass)
                log.warning("keyminter: renewal pass failed: %s", type(exc).__name__)
            await sleep(km.renewal_check_seconds)

    async def start_renewal() -> None:
        tasks.append(asyncio.create_task(renewing(), name="keyminter-renewal"))
        tasks.append(asyncio.create_task(checker.run(), name="keyminter-tailnet-checks"))
        if bus_auth is not None:
            await bus_auth.start(holder[0].broker.connection)

    async def stop() -> None:
        if bus_auth is not None:
            await bus_auth.stop()
        await cancelling.cancel_and_wait(tasks)
        await minter.store.close()
        await directory.close()
        for api in opened:
            await api.close()

    service_runtime = runtime.build_app(
        service=subjects.Service.KEYMINTER,
        routers=[
            handlers.build_router(work=work, workers=km.workers),
            handlers.build_tailnet_router(checker=checker),
        ],
        bus_settings=bus_settings,
        tracer_provider=tracer_provider,
        on_startup=[announce],
        after_startup=[start_renewal],
        on_shutdown=[stop],
        elected=True,
    )
    holder.append(service_runtime)
    work.tracer = service_runtime.tracer_provider.get_tracer("tailwire.keyminter")
    return service_runtime


def _bus_auth(
    config: configuration.BusAuthSettings,
    *,
    api_client: secrets.ApiClientFactory,
    namespace: str,
    clock: timing.Clock,
) -> busauth.BusAuth | None:
    """The auth-callout responder, when an issuer seed is configured."""
    if config.issuer_seed is None:
        return None
    return busauth.BusAuth(
        reviewer=tokenreview.TokenReviewer(api_client, audience=config.audience),
        issuer=buscredentials.issuer_from_seed(config.issuer_seed.get_secret_value()),
        namespace=namespace,
        service_account=config.nodeagent_service_account,
        clock=clock,
    )
