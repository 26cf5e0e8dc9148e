"""Benchmark of the watcher: changes per second from watch event to JetStream ack, with
10,000 pods, and the size of a pod snapshot. Prints one JSON document.

Everything runs on loopback: a real nats-server (JetStream on disk in a temp dir), the
emulated Kubernetes API over HTTP in this process, and the watcher as its own process,
`tailwire run watcher` exactly as deployed (telemetry middleware and spans on, no exporter).
A message is counted when a core NATS subscriber in this process receives it; JetStream has
stored it by then and the ack to the watcher is on its way (the watcher publishes with a
window of 16 awaiting their acks).

Phases:
  initial_sync   process start, list of N pods, N snapshots on the bus
  burst_modify   N label changes committed while this process's loop is blocked, so they wait
                 in the watch stream; timed from the last commit to the last message (the
                 emulator's own commit time, dominated by deepcopy, is reported apart)
  status_churn   a kubelet-like status change on every pod: processed, nothing published
                 (timed by the watcher's own events counter on /metrics)
  paced_modify   changes at a fixed rate; latency per change (API commit -> message seen)
  restart        a new watcher recalls N snapshots from the bus and relists: publishes
                 nothing but one pod created after its watch opened (the sentinel)

  recall_from_bus  reading the last snapshot of every pod subject back (what a restart does)
  publish_path_alone  the watcher's publish path in this process without the API, with a
                 window of 1, 16 (the default) and 64 publishes awaiting their acks

Usage: .venv/bin/python bench/bench_watcher.py [--pods 10000] [--rate 200] [--limit 240]
(`BENCH_PY_ARGS="-m cProfile -o /tmp/watcher-{n}.prof"` profiles the watcher processes.)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import httpx
import nats
from prometheus_client.parser import text_string_to_metric_families

from tailwire.services.watcher import domain, watching
from tailwire.services.watcher.adapters import stream
from tailwire.shared import bus, settings, subjects, telemetry
from tailwire.testing import kubeapi, natsserver

PODS = domain.BY_KIND[subjects.Kind.POD]


def pod(index: int) -> dict[str, Any]:
    """A pod as a real cluster holds it: labels, owner, status with conditions."""
    name = f"web-{index:05d}"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": f"ns-{index % 50:02d}",
            "labels": {"app": "web", "pod-template-hash": "5d8f7c9b6", "tier": "front"},
            "annotations": {"kubectl.kubernetes.io/restartedAt": "2026-11-01T00:00:00Z"},
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": "web-5d8f7c9b6",
                    "uid": "0b7e0d6a-3b1f-4f6e-9d36-0c1d2e3f4a5b",
                    "controller": True,
                }
            ],
        },
        "spec": {
            "nodeName": f"node-{index % 20:02d}",
            "containers": [
                {"name": "web", "image": "nginx:1.27", "ports": [{"containerPort": 80}]}
            ],
        },
        "status": {
            "phase": "Running",
            "podIP": f"10.244.{index // 250}.{index % 250 + 2}",
            "podIPs": [{"ip": f"10.244.{index // 250}.{index % 250 + 2}"}],
            "conditions": [
                {"type": t, "status": "True", "lastTransitionTime": "2026-11-01T00:00:00Z"}
                for t in ("Initialized", "Ready", "ContainersReady", "PodScheduled")
            ],
            "containerStatuses": [
                {
                    "name": "web",
                    "ready": True,
                    "restartCount": 0,
                    "image": "nginx:1.27",
                    "imageID": "sha256:" + "a" * 64,
                    "containerID": "containerd://" + "b" * 64,
                }
            ],
        },
    }


async def until(predicate: Callable[[], bool], *, limit: float, poll: float = 0.002) -> None:
    """Wait until `predicate` holds (polled), bounded by `limit` seconds."""
    async with asyncio.timeout(limit):
        while not predicate():  # noqa: ASYNC110 (another process: polled)
            await asyncio.sleep(poll)


async def metric(http: httpx.AsyncClient, name: str, **labels: str) -> float:
    """One sample of the watcher process's /metrics."""
    text = (await http.get("/metrics")).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def start_watcher(
    *, nats_url: str, kubeconfig: Path, health_port: int, page_size: int
) -> subprocess.Popen[bytes]:
    """`tailwire run watcher`, exactly as deployed, mirroring pods only."""
    env = {
        **os.environ,
        "TAILWIRE_NATS_URL": nats_url,
        "TAILWIRE_KUBECONFIG": str(kubeconfig),
        "TAILWIRE_WATCH_KINDS": "pod",
        "TAILWIRE_TRACES_EXPORTER": "none",
        "TAILWIRE_HEALTH_PORT": str(health_port),
        "TAILWIRE_LOG_LEVEL": "WARNING",
        # One page: the emulator copies every object for each page it serves (O(pages x N)),
        # a cost of the test harness that a real API server's watch cache does not have.
        "TAILWIRE_WATCH_LIST_PAGE_SIZE": str(page_size),
    }
    return subprocess.Popen(
        [
            sys.executable,
            *os.environ.get("BENCH_PY_ARGS", "").replace("{n}", str(time.time_ns())).split(),
            "-m",
            "tailwire.cli",
            "run",
            "watcher",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


async def run(*, count: int, rate: float, limit: float, workdir: Path) -> dict[str, Any]:
    results: dict[str, Any] = {"pods": count}
    with natsserver.running(store_dir=workdir / "nats") as server:
        async with kubeapi.serve(
            kubeconfig_path=workdir / "kubeconfig", history_size=count * 3
        ) as api:
            for namespace in {f"ns-{i % 50:02d}" for i in range(count)}:
                api.create(
                    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
                )
            raw_sizes = [len(json.dumps(api.create(pod(index)))) for index in range(count)]
            objects = api.objects("pods")

            # Snapshot size, and what holding all of them costs a consumer.
            tracemalloc.start()
            before = tracemalloc.get_traced_memory()[0]
            snapshots = [domain.normalize(PODS, obj) for obj in objects]
            held = tracemalloc.get_traced_memory()[0] - before
            tracemalloc.stop()
            sizes = sorted(len(s.to_bytes()) for s in snapshots)
            results["snapshot_bytes"] = {
                "median": sizes[len(sizes) // 2],
                "max": sizes[-1],
                "all_pods_mib": round(sum(sizes) / 2**20, 2),
                "raw_pod_json_median": sorted(raw_sizes)[len(raw_sizes) // 2],
                "parsed_in_memory_mib_all_pods": round(held / 2**20, 2),
            }
            del snapshots

            seen: list[tuple[str, float]] = []
            client = await nats.connect(server.url)
            # The streams the watcher waits for, declared as their owner (the renderer) would.
            await bus.declare_streams(client.jetstream(), bus=settings.BusSettings())

            async def on_message(msg: Any) -> None:
                seen.append((msg.subject, time.perf_counter()))

            await client.subscribe(subjects.cluster_filter(subjects.Kind.POD), cb=on_message)
            health_port = natsserver.free_port()
            http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{health_port}")

            # Initial sync: process start -> list -> N snapshots on the bus.
            start = time.perf_counter()
            watcher = start_watcher(
                nats_url=server.url,
                kubeconfig=api.kubeconfig_path,
                health_port=health_port,
                page_size=count + 1,
            )
            try:
                await until(lambda: len(seen) >= count, limit=limit, poll=0.01)
                results["initial_sync"] = {
                    "seconds_from_process_start": round(seen[-1][1] - start, 3),
                    "seconds_first_to_last_snapshot": round(seen[-1][1] - seen[0][1], 3),
                    "snapshots_per_second": round(count / (seen[-1][1] - seen[0][1])),
                }
                await api.wait_for_watchers("pods", within=limit)
                results["watcher_rss_mib_after_sync"] = rss_mib(watcher.pid)

                # Burst: N label changes committed while the loop is blocked, so they wait in
                # the watch stream; timed from the last commit to the last message on the bus.
                seen.clear()
                begin = time.perf_counter()
                for obj in objects:
                    meta = obj["metadata"]
                    api.patch(
                        "pods",
                        name=meta["name"],
                        namespace=meta["namespace"],
                        patch={"metadata": {"labels": {"rollout": "2"}}},
                    )
                committed = time.perf_counter()
                await until(lambda: len(seen) >= count, limit=limit)
                elapsed = seen[-1][1] - committed
                results["burst_modify"] = {
                    "changes": count,
                    "seconds_last_commit_to_last_message": round(elapsed, 3),
                    "changes_per_second": round(count / elapsed),
                    "emulator_commit_seconds": round(committed - begin, 3),
                }

                # Status churn: processed and suppressed, nothing published.
                seen.clear()
                modified = await metric(
                    http, "tailwire_watcher_events_total", kind="pod", type="MODIFIED"
                )
                for index, obj in enumerate(objects):
                    meta = obj["metadata"]
                    api.patch_status(
                        "pods",
                        name=meta["name"],
                        namespace=meta["namespace"],
                        status={
                            "containerStatuses": [
                                {"name": "web", "ready": True, "restartCount": index % 3 + 1}
                            ]
                        },
                    )
                committed = time.perf_counter()
                async with asyncio.timeout(limit):
                    while (  # noqa: ASYNC110
                        await metric(
                            http, "tailwire_watcher_events_total", kind="pod", type="MODIFIED"
                        )
                        < modified + count
                    ):
                        await asyncio.sleep(0.01)
                elapsed = time.perf_counter() - committed
                results["status_churn"] = {
                    "events": count,
                    "events_per_second": round(count / elapsed),
                    "published": len(seen),
                }

                # Paced: one change at a time; latency from the API commit to the bus.
                paced = min(count, int(rate * 5))
                seen.clear()
                sent: dict[str, float] = {}
                begin = time.perf_counter()
                for index in range(paced):
                    meta = objects[index]["metadata"]
                    api.patch(
                        "pods",
                        name=meta["name"],
                        namespace=meta["namespace"],
                        patch={"metadata": {"labels": {"rollout": "3"}}},
                    )
                    ref = subjects.ObjectRef(
                        kind=subjects.Kind.POD, namespace=meta["namespace"], name=meta["name"]
                    )
                    sent[subjects.cluster(ref)] = time.perf_counter()
                    delay = begin + (index + 1) / rate - time.perf_counter()
                    await asyncio.sleep(max(delay, 0))
                await until(lambda: len(seen) >= paced, limit=limit)
                latencies = sorted((t - sent[s]) * 1000 for s, t in seen if s in sent)
                results["paced_modify"] = {
                    "rate_per_second": rate,
                    "changes": paced,
                    "latency_ms_p50": round(statistics.median(latencies), 2),
                    "latency_ms_p99": round(latencies[int(len(latencies) * 0.99) - 1], 2),
                    "latency_ms_max": round(latencies[-1], 2),
                }
            finally:
                stop(watcher)

            # Restart: recall N snapshots from the bus, relist, publish nothing but a sentinel.
            api.patch_status(
                "pods",
                name=objects[0]["metadata"]["name"],
                namespace=objects[0]["metadata"]["namespace"],
                status={"message": "churn while down"},
            )
            seen.clear()
            async with asyncio.timeout(limit):
                while api.watchers("pods"):  # noqa: ASYNC110 (the old process's watch is gone)
                    await asyncio.sleep(0.01)
            start = time.perf_counter()
            watcher = start_watcher(
                nats_url=server.url,
                kubeconfig=api.kubeconfig_path,
                health_port=health_port,
                page_size=count + 1,
            )
            try:
                await api.wait_for_watchers("pods", within=limit)
                watching = time.perf_counter() - start
                api.create(pod(count))
                await until(lambda: len(seen) >= 1, limit=limit)
                results["restart"] = {
                    "seconds_process_start_to_watching": round(watching, 3),
                    "published_besides_one_new_pod": len(seen) - 1,
                }
            finally:
                stop(watcher)
            await http.aclose()
            start = time.perf_counter()
            recalled = await stream.read_last_snapshots(client, kind=subjects.Kind.POD)
            results["recall_from_bus"] = {
                "snapshots": len(recalled),
                "seconds": round(time.perf_counter() - start, 3),
            }
            await client.close()
            results["publish_path_alone"] = await publish_only(server.url, objects)
    return results


async def publish_only(nats_url: str, objects: list[dict[str, Any]]) -> dict[str, Any]:
    """The watcher's publish path (PublishQueue -> Publisher -> bus.publish -> ack) alone, in
    this process, with the same span and middlewares: its ceiling without the API."""
    bus_settings = settings.BusSettings(nats_url=nats_url)
    tracer_provider = telemetry.setup_tracing(
        service_name="bench", exporter="none", set_global=False
    )
    broker = bus.make_broker(service="bench", bus=bus_settings, tracer_provider=tracer_provider)
    await bus.connect_and_declare(broker, bus=bus_settings)
    await broker.start()
    figures: dict[str, Any] = {}
    try:
        publisher = stream.Publisher(broker=broker, tracer=tracer_provider.get_tracer("bench"))
        snapshots = [domain.normalize(PODS, obj) for obj in objects]
        for window in (1, 16, 64):
            queue = watching.PublishQueue(
                publisher=publisher,
                window=window,
                backoff=domain.Backoff(),
                sleep=asyncio.sleep,
                rand=lambda: 0.5,
            )
            start = time.perf_counter()
            for snapshot in snapshots:
                # A new version each round, so the stream's dedup window does not drop it.
                meta = snapshot.meta.model_copy(update={"resource_version": f"w{window}"})
                await queue.put(snapshot.model_copy(update={"meta": meta}))
            await queue.drain()
            elapsed = time.perf_counter() - start
            figures[f"window_{window}_publishes_per_second"] = round(len(snapshots) / elapsed)
    finally:
        await broker.stop()
        tracer_provider.shutdown()
    return figures


async def within(work: Awaitable[dict[str, Any]], *, seconds: float) -> dict[str, Any]:
    async with asyncio.timeout(seconds):
        return await work


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=200.0, help="paced changes per second")
    parser.add_argument("--limit", type=float, default=240.0, help="seconds per phase, at most")
    parser.add_argument("--quick", action="store_true", help="a small smoke run")
    args = parser.parse_args()
    if args.quick:
        args.pods, args.limit = 200, 30.0
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    with TemporaryDirectory(prefix="bench-watcher-") as workdir:
        results = asyncio.run(
            within(
                run(count=args.pods, rate=args.rate, limit=args.limit, workdir=Path(workdir)),
                seconds=args.limit * 6,
            )
        )
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
