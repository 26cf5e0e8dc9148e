"""Scale benchmark: memory (RSS) and CPU time of every service process, and the time the
whole pipeline takes to converge, with 1,000 to 10,000 pods, 100 EgressGroups and 50 nodes.
Prints one JSON document.

Everything runs on loopback: a real nats-server (JetStream on disk in a temp dir), the
emulated Kubernetes API and the control-API fake in this process, and each service as its
own process, `tailwire run <service>` as deployed (telemetry middleware on, no exporter):
watcher, renderer, keyminter, dnsupdater and one nodeagent (for `node-00`).

For each size, the cluster is created in the emulator first (namespaces, 50 nodes, 100
groups, N pods, every pod a member of exactly one group, each node holding members of every
group: N/50 members per node plan); the renderer, keyminter, dnsupdater and nodeagent are
started and ready; then the watcher starts (t = 0) and mirrors it all. Measured from t = 0,
by a core-NATS subscriber in this process on `tailwire.v1.>`:

  pods_mirrored   every pod's snapshot is on the bus
  plans_complete  the latest plan of every node holds all its members (N in all)
  keys_answered   every group's key request was answered (keys.ready or keys.failed)
  node00_acked    node-00's agent acked the final plan of its node

then each process's VmHWM (peak resident), VmRSS and CPU seconds from /proc/<pid>.

The nodeagent runs as root or not, with an empty proc root and no named netns on the pods:
it cannot enter any pod netns, so it resolves, fails per pod and acks without touching the
kernel (its memory is that of holding and diffing a 200-member plan, not of 200 sockets).
The dnsupdater consumes Services, Gateways and HTTPRoutes only: none of the pods reach it,
and with no zone configured it holds its view and idles; its figure is its floor.

Usage: .venv/bin/python bench/bench_scale.py [--sizes 1000,3000,10000] [--groups 100]
[--nodes 50] [--limit 300] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import benchkit
import nats
from nats.aio.msg import Msg

from tailwire.testing import controlapi, kubeapi, natsserver

GATEWAY_NAMESPACE = "tailwire-system"


def namespace(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}},
    }


def node(index: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": f"node-{index:02d}", "labels": {"kubernetes.io/os": "linux"}},
    }


def group(index: int, *, namespaces: int) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "selector": {
            "namespaceSelector": {
                "matchLabels": {"kubernetes.io/metadata.name": f"ns-{index % namespaces:02d}"}
            },
            "podSelector": {"matchLabels": {"egress": f"g{index}"}},
        },
        "mode": "subnet",
        "routes": [f"192.168.{index % 256}.0/24"],
    }
    if index % 10 == 0:
        spec["exitNode"] = {"nodeID": "exit-1", "allowLANAccess": True}
    return {
        "apiVersion": "tailscale.rajsingh.info/v1alpha1",
        "kind": "EgressGroup",
        "metadata": {"name": f"group-{index:03d}"},
        "spec": spec,
    }


def pod(index: int, *, groups: int, namespaces: int, nodes: int) -> dict[str, Any]:
    g = index % groups
    ip = f"10.244.{index // 250}.{index % 250 + 2}"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"pod-{index:05d}",
            "namespace": f"ns-{g % namespaces:02d}",
            "labels": {"egress": f"g{g}", "app": f"app-{index % 37}"},
        },
        "spec": {
            "nodeName": f"node-{(index // groups) % nodes:02d}",
            "containers": [{"name": "app", "image": "nginx:1.27"}],
        },
        "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]},
    }


class Observer:
    """What the pipeline has produced so far, from a core-NATS subscription."""

    def __init__(self) -> None:
        self.pods: set[str] = set()
        self.members: dict[str, int] = {}
        self.plan_generation: dict[str, int] = {}
        self.keys: set[str] = set()
        self.acked: dict[str, int] = {}
        self.plan_messages = 0
        self.plan_bytes = 0

    async def on_message(self, msg: Msg) -> None:
        tokens = msg.subject.split(".")
        if tokens[2] == "cluster" and tokens[3] == "pod":
            self.pods.add(msg.subject)
        elif tokens[2] == "node" and tokens[-1] == "plan":
            plan = json.loads(msg.data)
            self.plan_messages += 1
            self.plan_bytes += len(msg.data)
            self.members[tokens[3]] = len(plan["members"])
            self.plan_generation[tokens[3]] = plan["generation"]
        elif tokens[2] == "node" and tokens[-1] == "ack":
            self.acked[tokens[3]] = json.loads(msg.data)["generation"]
        elif tokens[2] == "keys" and tokens[3] in ("ready", "failed"):
            self.keys.add(tokens[-1])


async def one_size(
    *, pods: int, groups: int, nodes: int, limit: float, workdir: Path
) -> dict[str, Any]:
    namespaces = max(1, groups // 2)
    result: dict[str, Any] = {"pods": pods, "groups": groups, "nodes": nodes}
    with natsserver.running(store_dir=workdir / f"nats-{pods}") as server:
        async with (
            controlapi.serve() as fake,
            kubeapi.serve(
                kubeconfig_path=workdir / f"kubeconfig-{pods}",
                history_size=pods * 3,
                request_log_limit=1000,
            ) as api,
        ):
            started = time.perf_counter()
            for name in [GATEWAY_NAMESPACE, *(f"ns-{i:02d}" for i in range(namespaces))]:
                api.create(namespace(name))
            for i in range(nodes):
                api.create(node(i))
            for i in range(groups):
                api.create(group(i, namespaces=namespaces))
            for i in range(pods):
                api.create(pod(i, groups=groups, namespaces=namespaces, nodes=nodes))
            result["emulator_create_seconds"] = round(time.perf_counter() - started, 2)
            oauth = fake.add_oauth_client(scopes=["auth_keys", "devices:core"], tags=["tag:k8s"])
            proc_root = workdir / f"proc-{pods}"
            proc_root.mkdir()
            env = {
                "TAILWIRE_NATS_URL": server.url,
                "TAILWIRE_KUBECONFIG": str(api.kubeconfig_path),
                "TAILWIRE_WATCH_LIST_PAGE_SIZE": str(pods + 1000),
                "TAILWIRE_TAILSCALE_API_URL": fake.url,
                "TAILWIRE_TAILSCALE_OAUTH_CLIENT_ID": oauth.client_id,
                "TAILWIRE_TAILSCALE_OAUTH_CLIENT_SECRET": oauth.client_secret,
                "TAILWIRE_KEYMINTER_RATE_PER_SECOND": "1000",
                "TAILWIRE_KEYMINTER_RATE_BURST": "1000",
                "TAILWIRE_GATEWAY_STATE_ROOT": str(workdir / f"gateways-{pods}"),
                "TAILWIRE_PROC_ROOT": str(proc_root),
            }
            observer = Observer()
            nc = await nats.connect(server.url)
            await nc.subscribe("tailwire.v1.>", cb=observer.on_message)
            services = [
                benchkit.Service("renderer", env=env),
                benchkit.Service("keyminter", env=env),
                benchkit.Service("dnsupdater", env=env),
                benchkit.Service("nodeagent", env=env, args=("--node", "node-00")),
            ]
            try:
                for service in services:
                    await service.ready()
                result["idle_before_sync"] = {s.name: s.figures() for s in services}
                result["load_average_1m_start"] = benchkit.load()
                t0 = time.perf_counter()
                watcher = benchkit.Service("watcher", env=env)
                services.append(watcher)
                members_per_node = {f"node-{i:02d}": 0 for i in range(nodes)}
                for i in range(pods):
                    members_per_node[f"node-{(i // groups) % nodes:02d}"] += 1
                milestones = {
                    "pods_mirrored": lambda: len(observer.pods) >= pods,
                    "plans_complete": lambda: all(
                        observer.members.get(n) == count for n, count in members_per_node.items()
                    ),
                    "keys_answered": lambda: len(observer.keys) >= groups,
                    "node00_acked": lambda: (
                        "node-00" in observer.plan_generation
                        and observer.members.get("node-00") == members_per_node["node-00"]
                        and observer.acked.get("node-00") == observer.plan_generation["node-00"]
                    ),
                }
                reached: dict[str, float | None] = dict.fromkeys(milestones)

                def check() -> bool:
                    # Every milestone on its own clock.
                    for label, predicate in milestones.items():
                        if reached[label] is None and predicate():
                            reached[label] = round(time.perf_counter() - t0, 2)
                    return all(v is not None for v in reached.values())

                await benchkit.until(check, limit=limit, poll=0.05)
                result["seconds_from_watcher_start"] = reached
                result["load_average_1m_end"] = benchkit.load()
                await asyncio.sleep(1.0)
                result["processes"] = {s.name: s.figures() for s in services}
                result["reached_at_end"] = {
                    "pods_on_bus": len(observer.pods),
                    "members_in_plans": sum(observer.members.values()),
                    "keys_answered": len(observer.keys),
                    "plan_messages": observer.plan_messages,
                    "plan_mib_published": round(observer.plan_bytes / 2**20, 1),
                }
            finally:
                for service in services:
                    service.stop()
                await nc.close()
    return result


async def run(*, sizes: list[int], groups: int, nodes: int, limit: float) -> dict[str, Any]:
    results: dict[str, Any] = {
        "benchmark": "scale",
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        "sizes": [],
    }
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        for pods in sizes:
            results["sizes"].append(
                await one_size(
                    pods=pods, groups=groups, nodes=nodes, limit=limit, workdir=Path(tmp)
                )
            )
    results["growth"] = growth(results["sizes"])
    return results


def growth(sizes: list[dict[str, Any]]) -> dict[str, Any]:
    """Largest size / smallest size, for pods, convergence time and each process's peak RSS."""
    if len(sizes) < 2:
        return {}
    small, large = sizes[0], sizes[-1]

    def ratio(a: float | None, b: float | None) -> float | None:
        return round(a / b, 2) if a is not None and b else None

    times = {
        label: ratio(
            large["seconds_from_watcher_start"].get(label),
            small["seconds_from_watcher_start"].get(label),
        )
        for label in small.get("seconds_from_watcher_start", {})
    }

    def per_process(key: str) -> dict[str, float | None]:
        return {
            name: ratio(large["processes"].get(name, {}).get(key), figures.get(key))
            for name, figures in small.get("processes", {}).items()
        }

    return {
        "pods": ratio(large["pods"], small["pods"]),
        "time": times,
        "peak_rss": per_process("vmhwm_mib"),
        "cpu_seconds": per_process("cpu_seconds"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,3000,10000")
    parser.add_argument("--groups", type=int, default=100)
    parser.add_argument("--nodes", type=int, default=50)
    parser.add_argument("--limit", type=float, default=300.0, help="seconds per size, at most")
    parser.add_argument("--quick", action="store_true", help="a small smoke run")
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.groups, args.nodes, args.limit = "100,200", 10, 5, 60.0
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
    sizes = [int(s) for s in args.sizes.split(",")]
    with contextlib.redirect_stdout(sys.stderr):
        result = asyncio.run(
            run(sizes=sizes, groups=args.groups, nodes=args.nodes, limit=args.limit)
        )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
