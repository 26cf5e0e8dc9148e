"""Liveness, readiness and Prometheus metrics over HTTP, one small server per service.

`/healthz` answers 200 while the process serves; `/readyz` answers 200 once the service has
started (streams declared, subscribers attached) and 503 before and while it shuts down;
`/metrics` is the Prometheus text format of the process's registry. Kubernetes probes and
`tailwire demo` use these. It must not expose anything but these three paths.
"""

from __future__ import annotations

import logging

import prometheus_client
from aiohttp import web

log = logging.getLogger(__name__)


class HealthServer:
    def __init__(
        self,
        *,
        port: int,
        host: str = "0.0.0.0",  # noqa: S104 (probes come from the kubelet, not loopback)
        registry: prometheus_client.CollectorRegistry | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.registry = registry or prometheus_client.REGISTRY
        self.ready = False
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        if self.port == 0 and self._runner.addresses:
            self.port = int(self._runner.addresses[0][1])
        log.info("health endpoints on %s:%d", self.host, self.port)

    async def stop(self) -> None:
        self.ready = False
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _healthz(self, _: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _readyz(self, _: web.Request) -> web.Response:
        return web.Response(
            text="ready\n" if self.ready else "starting\n", status=200 if self.ready else 503
        )

    async def _metrics(self, _: web.Request) -> web.Response:
        return web.Response(
            body=prometheus_client.generate_latest(self.registry),
            headers={"Content-Type": prometheus_client.CONTENT_TYPE_LATEST},
        )
