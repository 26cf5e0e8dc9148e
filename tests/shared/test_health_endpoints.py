"""Health endpoints: ready only after start-up, metrics in Prometheus format."""

from __future__ import annotations

import httpx
import prometheus_client

from tailwire.shared import health


async def test_readyz_follows_the_ready_flag_and_metrics_are_served() -> None:
    registry = prometheus_client.CollectorRegistry()
    counter = prometheus_client.Counter("tailwire_test_events", "events", registry=registry)
    counter.inc(3)
    server = health.HealthServer(port=0, host="127.0.0.1", registry=registry)
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
            assert (await client.get("/healthz")).status_code == 200
            assert (await client.get("/readyz")).status_code == 503
            server.ready = True
            assert (await client.get("/readyz")).status_code == 200
            metrics = await client.get("/metrics")
            assert "tailwire_test_events_total 3.0" in metrics.text
            assert (await client.get("/secrets")).status_code == 404
    finally:
        await server.stop()
