"""Benchmark of the keyminter: latency of a mint and of a reuse, concurrent minting, one key
per owner under a stampede, and the bus round trip request -> ready. Prints one JSON document.

Everything runs on loopback in this process: the control-API fake (Tailscale API v2, real HTTP
through the project's httpx client), the emulated Kubernetes API (Secrets over HTTP through
kubernetes-asyncio), and for the bus phase a real nats-server with the keyminter wired exactly
as `tailwire run keyminter` wires it (telemetry middleware on, no exporter). The fake clock is
used for keys and tokens only; every duration below is wall time.

Phases:
  mint_sequential   N owners, one after another: read Secret, claim, list keys, mint, write
  reuse             the same N owners again: one Secret read each, no control-API call
  mint_concurrent   N more owners at once (the per-tailnet rate limit raised out of the way)
  stampede          S concurrent requests for one owner: keys minted (must be 1)
  default_limits    10 owners with the default limit (2 calls/s, burst 10): the limit's cost
  bus_round_trip    M requests published to JetStream; time to each `keys.ready`

Usage: .venv/bin/python bench/bench_keyminter.py [--owners 200] [--bus 100] [--limit 120]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import httpx
import nats
import pydantic
from kubernetes_asyncio import client

from tailwire.services.keyminter import app, configuration, domain, minting
from tailwire.services.keyminter.adapters import secrets, tailnets
from tailwire.shared import bus, settings, subjects, telemetry
from tailwire.shared.events import base, keys
from tailwire.shared.k8s import names
from tailwire.testing import controlapi, kubeapi, natsserver

NAMESPACE = "tailwire-system"


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2)

    return {
        "n": len(ordered),
        "p50_ms": at(0.50),
        "p95_ms": at(0.95),
        "p99_ms": at(0.99),
        "mean_ms": round(statistics.fmean(ordered) * 1000, 2),
    }


def owner(name: str) -> base.OwnerRef:
    return base.OwnerRef(
        api_version="tailscale.rajsingh.info/v1alpha1",
        kind="EgressGroup",
        name=name,
        uid=str(uuid.uuid4()),
    )


def request(ref: base.OwnerRef) -> keys.KeyRequest:
    return keys.KeyRequest(
        owner=ref,
        hostname_prefix=names.hostname_prefix(ref.name),
        secret_name=names.authkey_secret(ref.name),
        secret_namespace=NAMESPACE,
    )


async def timed(calls: list[Callable[[], Awaitable[Any]]]) -> list[float]:
    durations = []
    for call in calls:
        start = time.perf_counter()
        await call()
        durations.append(time.perf_counter() - start)
    return durations


@asynccontextmanager
async def environment() -> AsyncIterator[tuple[controlapi.FakeControlAPI, kubeapi.KubeAPI]]:
    with TemporaryDirectory(prefix="tw-bench-km-") as tmp:
        async with (
            controlapi.serve(clock=controlapi.FakeClock()) as fake,
            kubeapi.serve(kubeconfig_path=Path(tmp) / "kubeconfig") as kube,
        ):
            kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
            yield fake, kube


def make_minter(
    *,
    fake: controlapi.FakeControlAPI,
    tailscale: settings.TailscaleSettings,
    api: client.ApiClient,
    rate: float,
    burst: int,
) -> minting.Minter:
    async def api_client() -> client.ApiClient:
        return api

    async def sleep(seconds: float, /) -> None:
        # Real waiting, and the keyminter's (fake) clock moves with it: the rate limiter
        # refills by that clock, so both must be one time source.
        await asyncio.sleep(seconds)
        assert isinstance(fake.clock, controlapi.FakeClock)
        fake.clock.advance(seconds=seconds)

    directory = tailnets.Tailnets(
        tailscale=tailscale,
        kube=settings.KubernetesSettings(namespace=NAMESPACE),
        api_client=api_client,
        clock=fake.clock,
        sleep=sleep,
        backoff=domain.Backoff(),
        rate=rate,
        burst=burst,
        http=lambda url: httpx.AsyncClient(base_url=url, timeout=10.0),
    )
    return minting.Minter(
        store=secrets.SecretStore(api_client),
        tailnets=directory,
        clock=fake.clock,
        policy=minting.Policy(),
    )


async def direct_phases(owners: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    async with environment() as (fake, kube), await kube.api_client() as api:
        oauth = fake.add_oauth_client(scopes=["auth_keys", "devices:core"], tags=["tag:k8s"])
        tailscale = settings.TailscaleSettings(
            tailscale_api_url=fake.url,
            tailscale_oauth_client_id=oauth.client_id,
            tailscale_oauth_client_secret=pydantic.SecretStr(oauth.client_secret),
        )
        fast = make_minter(fake=fake, tailscale=tailscale, api=api, rate=1e6, burst=10**6)
        first = [request(owner(f"g{i}")) for i in range(owners)]
        before = len(fake.requests)
        mint = await timed([lambda r=r: fast.ensure_key(r) for r in first])
        results["mint_sequential"] = percentiles(mint) | {
            "control_api_calls_per_mint": round((len(fake.requests) - before) / owners, 2)
        }
        before = len(fake.requests)
        reuse = await timed([lambda r=r: fast.ensure_key(r) for r in first])
        results["reuse"] = percentiles(reuse) | {"control_api_calls": len(fake.requests) - before}

        more = [request(owner(f"c{i}")) for i in range(owners)]
        start = time.perf_counter()
        await asyncio.gather(*(fast.ensure_key(r) for r in more))
        wall = time.perf_counter() - start
        results["mint_concurrent"] = {
            "owners": owners,
            "wall_s": round(wall, 3),
            "mints_per_s": round(owners / wall, 1),
        }

        one = request(owner("stampede"))
        replicas = [
            make_minter(fake=fake, tailscale=tailscale, api=api, rate=1e6, burst=10**6)
            for _ in range(3)
        ]
        minted_before = len(fake.keys)
        outcomes = await asyncio.gather(
            *(replicas[i % 3].ensure_key(one) for i in range(60)), return_exceptions=True
        )
        results["stampede"] = {
            "requests": 60,
            "keyminters": 3,
            "keys_minted": len(fake.keys) - minted_before,
            "served": sum(isinstance(o, keys.KeyReady) for o in outcomes),
            "deferred_to_redelivery": sum(not isinstance(o, keys.KeyReady) for o in outcomes),
        }

        limited = make_minter(fake=fake, tailscale=tailscale, api=api, rate=2.0, burst=10)
        start = time.perf_counter()
        for i in range(10):
            await limited.ensure_key(request(owner(f"l{i}")))
        results["default_limits"] = {
            "owners": 10,
            "wall_s": round(time.perf_counter() - start, 2),
            "rate_per_s": 2.0,
            "burst": 10,
        }
        for minter in (fast, limited, *replicas):
            await minter.tailnets.close()
    return results


async def bus_phase(count: int) -> dict[str, Any]:
    with natsserver.running() as server:
        async with environment() as (fake, kube), await kube.api_client() as api:
            oauth = fake.add_oauth_client(scopes=["auth_keys", "devices:core"], tags=["tag:k8s"])

            async def api_client() -> client.ApiClient:
                return api

            assert isinstance(fake.clock, controlapi.FakeClock)
            service = app.create(
                bus_settings=settings.BusSettings(nats_url=server.url),
                tracer_provider=telemetry.setup_tracing(
                    service_name="bench", exporter="none", set_global=False
                ),
                keyminter_settings=configuration.KeyminterSettings(
                    rate_per_second=1e6, rate_burst=10**6, renewal_check_seconds=3600
                ),
                tailscale_settings=settings.TailscaleSettings(
                    tailscale_api_url=fake.url,
                    tailscale_oauth_client_id=oauth.client_id,
                    tailscale_oauth_client_secret=pydantic.SecretStr(oauth.client_secret),
                ),
                kube_settings=settings.KubernetesSettings(namespace=NAMESPACE),
                api_client=api_client,
                clock=fake.clock,
            )
            nc = await nats.connect(server.url)
            # The streams the keyminter waits for, declared as their owner (the renderer) would.
            await bus.declare_streams(nc.jetstream(), bus=settings.BusSettings())
            await service.app.start()
            sent: dict[str, float] = {}
            latencies: list[float] = []
            done = asyncio.Event()

            async def on_ready(msg: Any) -> None:
                ready = keys.KeyReady.model_validate_json(msg.data)
                latencies.append(time.perf_counter() - sent[ready.owner.uid])
                if len(latencies) == count:
                    done.set()

            await nc.subscribe(subjects.keys_filter("ready"), cb=on_ready)
            js = nc.jetstream()
            start = time.perf_counter()
            for i in range(count):
                req = request(owner(f"b{i}"))
                ref = subjects.ObjectRef(
                    kind=subjects.Kind.EGRESSGROUP, namespace=None, name=req.owner.name
                )
                sent[req.owner.uid] = time.perf_counter()
                await js.publish(subjects.keys_request(ref), req.to_bytes())
            async with asyncio.timeout(120):
                await done.wait()
            wall = time.perf_counter() - start
            await nc.close()
            await service.app.stop()
    return percentiles(latencies) | {
        "requests": count,
        "wall_s": round(wall, 3),
        "requests_per_s": round(count / wall, 1),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--owners", type=int, default=200)
    parser.add_argument("--bus", type=int, default=100)
    parser.add_argument("--limit", type=float, default=120.0, help="seconds for the whole run")
    parser.add_argument("--quick", action="store_true", help="a small smoke run")
    args = parser.parse_args()
    if args.quick:
        args.owners, args.bus, args.limit = 10, 10, 60.0
    logging.basicConfig(level=logging.ERROR)
    # FastStream's access log writes to sys.stdout; stdout is for the JSON document only.
    result_out, sys.stdout = sys.stdout, sys.stderr
    async with asyncio.timeout(args.limit):
        started = time.perf_counter()
        direct = await direct_phases(args.owners)
        bus_rt = await bus_phase(args.bus)
    print(
        json.dumps(
            {
                "benchmark": "keyminter",
                "python": sys.version.split()[0],
                **direct,
                "bus_round_trip": bus_rt,
                "total_s": round(time.perf_counter() - started, 1),
            },
            indent=2,
        ),
        file=result_out,
    )


if __name__ == "__main__":
    asyncio.run(main())
