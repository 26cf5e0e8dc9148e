"""Benchmark: gateway IP change on the bus -> new answer from a real BIND 9, vs a CronJob.

Loopback only, bounded in time (about 20 s). Starts nats-server, named (TSIG, dynamic zone)
and the dnsupdater in this process; a producer publishes Service snapshots as the watcher
would. Measured:

- `ip_change`: publish a Service snapshot with a new Tailscale IP, then query BIND over UDP
  in a tight loop until it answers the new IP (end-to-end, what a tailnet client sees).
- `route_burst`: publish N new HTTPRoutes at once; time until the last hostname resolves.
- `cron_body`: one run of what the seed's CronJob does each time (read the whole zone,
  compute and send the update), measured here; the CronJob's latency is then its schedule
  (uniformly distributed wait, half the period on average) plus a Job pod start plus that.

Prints one JSON document.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tailwire.services.dnsupdater import app, config
from tailwire.services.dnsupdater.adapters import rfc2136
from tailwire.services.dnsupdater.domain import records
from tailwire.shared import bus, settings, subjects, telemetry
from tailwire.shared.events import cluster, dns
from tailwire.shared.k8s import labels
from tailwire.testing import bind, natsserver

ITERATIONS = 40
BURST = 50
TIME_BUDGET = 20.0
CRON_PERIODS = (60.0, 300.0)  # the minimum CronJob schedule, and the seed's "every few minutes"
JOB_POD_START = 3.0  # a typical Job pod start (image cached), seconds; an assumption


class NeverTicker:
    async def wait(self) -> None:
        await asyncio.Event().wait()


def _meta(namespace: str, name: str, version: int, **kw: Any) -> cluster.Meta:
    return cluster.Meta(
        uid=f"{namespace}-{name}",
        namespace=namespace,
        name=name,
        resource_version=str(version),
        **kw,
    )


def _service(ip: str, version: int) -> cluster.ServiceSnapshot:
    return cluster.ServiceSnapshot(
        meta=_meta(
            "envoy-gateway",
            "envoy-tailscale",
            version,
            labels={
                labels.ENVOY_OWNING_GATEWAY_NAME: "tailscale-gateway",
                labels.ENVOY_OWNING_GATEWAY_NAMESPACE: "tailscale",
            },
        ),
        service_type="LoadBalancer",
        load_balancer_class="tailscale",
        load_balancer_ingress=(cluster.LoadBalancerIngress(ip=ip),),
    )


def _route(name: str, version: int) -> cluster.HTTPRouteSnapshot:
    parent = cluster.ParentRef(namespace="tailscale", name="tailscale-gateway")
    return cluster.HTTPRouteSnapshot(
        meta=_meta("apps", name, version),
        parent_refs=(parent,),
        hostnames=(f"{name}.example.test",),
        parents=(cluster.RouteParentStatus(parent=parent, accepted=True),),
    )


def _summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "n": len(ordered),
        "p50_ms": round(statistics.median(ordered) * 1000, 2),
        "p95_ms": round(ordered[max(0, int(len(ordered) * 0.95) - 1)] * 1000, 2),
        "max_ms": round(ordered[-1] * 1000, 2),
        "mean_ms": round(statistics.fmean(ordered) * 1000, 2),
    }


async def _until_answer(server: bind.BindServer, name: str, value: str, *, deadline: float) -> None:
    while time.monotonic() < deadline:
        if value in await asyncio.to_thread(server.query, name):
            return
        await asyncio.sleep(0.001)
    raise TimeoutError(f"{name} never answered {value}")


async def run(server: bind.BindServer, nats: natsserver.NatsServer) -> dict[str, Any]:
    bus_settings = settings.BusSettings(nats_url=nats.url)
    dns_settings = config.DnsUpdaterSettings.model_validate(
        {
            "zones": [{"zone": "example.test", "backends": ["rfc2136"]}],
            "rfc2136_server": server.host,
            "rfc2136_port": server.port,
            "tsig_key_name": server.key_name,
            "tsig_secret": server.key_secret,
        }
    )
    wired = app.wire(
        bus_settings=bus_settings,
        dns_settings=dns_settings,
        ticker=NeverTicker(),
        tracer_provider=telemetry.setup_tracing(
            service_name="bench-dnsupdater", exporter="none", set_global=False
        ),
    )
    producer = bus.make_broker(service="watcher", bus=bus_settings)
    # The streams the dnsupdater waits for, declared as their owner (the renderer) would.
    await bus.connect_and_declare(producer, bus=bus_settings)
    await wired.runtime.app.start()
    await producer.start()

    async def publish(snapshot: Any) -> None:
        await bus.publish(
            producer, snapshot, subject=subjects.cluster(snapshot.ref), msg_id=snapshot.dedup_id
        )

    started = time.monotonic()
    version = 1
    try:
        gateway = cluster.GatewaySnapshot(
            meta=_meta("tailscale", "tailscale-gateway", 1), gateway_class_name="tailscale"
        )
        await publish(gateway)
        await publish(_service("100.64.0.1", version))
        await publish(_route("docs", 1))
        await _until_answer(
            server, "docs.example.test", "100.64.0.1", deadline=time.monotonic() + 10
        )

        ip_samples: list[float] = []
        for i in range(ITERATIONS):
            if time.monotonic() - started > TIME_BUDGET / 2:
                break
            version += 1
            ip = f"100.64.{1 + (i + 1) // 250}.{(i + 1) % 250 + 1}"
            t0 = time.monotonic()
            await publish(_service(ip, version))
            await _until_answer(server, "docs.example.test", ip, deadline=t0 + 10)
            ip_samples.append(time.monotonic() - t0)

        t0 = time.monotonic()
        for n in range(BURST):
            await publish(_route(f"app{n}", 1))
        current_ip = ip
        for n in range(BURST):
            await _until_answer(server, f"app{n}.example.test", current_ip, deadline=t0 + 15)
        burst_seconds = time.monotonic() - t0

        # The CronJob's body: read the zone, diff, write (here with nothing to change + 1 record).
        backend = rfc2136.Rfc2136Backend(
            server=server.host,
            port=server.port,
            key_name=server.key_name,
            key_secret=server.key_secret,
        )
        cron_samples: list[float] = []
        for i in range(10):
            t0 = time.monotonic()
            actual = records.owned(await backend.read("example.test"))
            desired = set(actual) | {
                dns.Record(name="cron.example.test", type="A", value=f"100.64.9.{i + 1}")
            }
            desired -= {r for r in actual if r.name == "cron.example.test"}
            change = records.difference(desired=desired, actual=actual)
            await backend.apply("example.test", change=change, desired=frozenset(desired))
            cron_samples.append(time.monotonic() - t0)
    finally:
        await producer.stop()
        await wired.runtime.app.stop()

    cron_body = statistics.median(cron_samples)
    return {
        "benchmark": "dnsupdater",
        "python": sys.version.split()[0],
        "ip_change_to_bind_answer": _summary(ip_samples),
        "route_burst": {
            "routes": BURST,
            "seconds_until_all_resolve": round(burst_seconds, 3),
            "routes_per_second": round(BURST / burst_seconds, 1),
        },
        "cron_body_ms_median": round(cron_body * 1000, 2),
        "cronjob_expected_latency_s": {
            f"every_{int(p)}s": {
                "mean": round(p / 2 + JOB_POD_START + cron_body, 1),
                "worst": round(p + JOB_POD_START + cron_body, 1),
            }
            for p in CRON_PERIODS
        },
        # CronJob latency / tailwire latency, mean against median (> 1: tailwire is faster).
        "ratios_cron_mean_to_p50": {
            f"every_{int(p)}s": round(
                (p / 2 + JOB_POD_START + cron_body) / statistics.median(ip_samples), 0
            )
            for p in CRON_PERIODS
        },
        "load_average_1m": os.getloadavg()[0],
        "assumptions": {
            "job_pod_start_s": JOB_POD_START,
            "cron_wait": "uniform over the schedule period",
        },
    }


def main() -> None:
    global ITERATIONS, BURST
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small smoke run")
    if parser.parse_args().quick:
        ITERATIONS, BURST = 5, 5
    # Only the JSON goes to stdout; FastStream's access log goes to stderr with the rest.
    with (
        contextlib.redirect_stdout(sys.stderr),
        tempfile.TemporaryDirectory(prefix="tailwire-bench-") as tmp,
        natsserver.running(store_dir=Path(tmp)) as nats,
        bind.running(zones=("example.test",)) as server,
    ):
        result = asyncio.run(run(server, nats))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
