"""End-to-end benchmark: pod creation in the Kubernetes API -> the nodeagent's ack, through
every service and a real nats-server, against the anchor's design (tailgate: a polling loop
that LISTs every pod every 3 s) measured in the same run. Prints one JSON document.

The whole system comes from `tailwire.testing.system` (secured nats-server, emulated
Kubernetes API over HTTP, control-API fake, each service as its own process, real netns per
pod when root: the ack then means routes are live in the pod's netns). One EgressGroup
(`bench`, default cgnat mode) selects the pods of namespace `bench`.

Phases (pod netns are made and wired before the clock starts: a CNI's work, not ours):
  warm_up   one pod, until acked: the gateway pod exists and the key is minted
  single    pods created one at a time, each waited for: latency per pod
  burst     N pods created back to back: latency per pod, and throughput = N / (last ack -
            first creation), the pod changes per second the pipeline sustained
  anchor    the same N-pod burst in namespace `anchor` (not selected by the group), stitched
            by the baseline: a loop in this process that every 3 s LISTs all pods from the
            same API over HTTP and, when members are new, applies a plan holding all members
            with the same datapath code (`nodeagent.reconciling.Agent`) to its own gateway
            netns. Latency = creation -> that pass's result.
  paced     last, pods created at fixed rates (5, 10, 20/s for 8 s each) on top of the
            members already there: latency per rate and the rate achieved (what the
            pipeline sustains)

Latency is wall time (the machine is shared: the load average is reported next to each
phase); the service processes' CPU seconds per phase are reported too.

Usage: .venv/bin/python bench/bench_pipeline.py [--burst 200] [--single 10] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import statistics
import sys
import tempfile
import time
from typing import Any

import benchkit
from kubernetes_asyncio import client
from nats.aio.msg import Msg

from tailwire.services.nodeagent import reconciling
from tailwire.services.renderer.egress import links, options
from tailwire.shared import ids, subjects
from tailwire.shared.events import nodes
from tailwire.shared.k8s import labels
from tailwire.testing import system

# Link addresses as the renderer assigns them (slot = index).
LINKS = links.LinkRange(
    cidr_v4=options.Options().link_cidr_v4, cidr_v6=options.Options().link_cidr_v6
)

NODE = "node-a"
POLL_PERIOD = 3.0
MEMBER_LABEL = {"bench.tailwire.dev/egress": "true"}
GROUP = {
    "apiVersion": "tailscale.rajsingh.info/v1alpha1",
    "kind": "EgressGroup",
    "metadata": {"name": "bench"},
    "spec": {
        "selector": {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "bench"}},
            "podSelector": {"matchLabels": MEMBER_LABEL},
        }
    },
}


def summary(samples: list[float]) -> dict[str, float | int | None]:
    if not samples:
        return {"count": 0}
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {
        "count": len(samples),
        "p50_s": round(statistics.median(ordered), 3),
        "p99_s": round(p99, 3),
        "max_s": round(ordered[-1], 3),
        "mean_s": round(statistics.fmean(ordered), 3),
    }


class Acks:
    """When each pod first appeared in an ack of NODE, and when it was first ok there."""

    def __init__(self) -> None:
        self.seen: dict[str, float] = {}
        self.ok: dict[str, float] = {}
        self.messages = 0

    async def on_message(self, msg: Msg) -> None:
        now = time.perf_counter()
        ack = nodes.NodeAck.model_validate_json(msg.data)
        self.messages += 1
        for pod in ack.pods:
            self.seen.setdefault(pod.pod_uid, now)
            if pod.ok:
                self.ok.setdefault(pod.pod_uid, now)


class Pods:
    """Member pods made the way `System.create_member_pod` makes them, with the netns step
    split from the API step so that only the API step is inside the measured window."""

    def __init__(self, s: system.System) -> None:
        self.s = s
        self.count = 0

    def next_ip(self) -> str:
        # Our own addresses (System.pod_ip gives 10.244.<node>.<n>, which runs out of a /24
        # past 245 pods on a node); inside the cluster CIDR, away from the launcher's.
        self.count += 1
        return f"10.244.{100 + self.count // 250}.{self.count % 250 + 2}"

    async def prepare(self, count: int) -> list[tuple[str | None, str]]:
        prepared: list[tuple[str | None, str]] = []
        for _ in range(count):
            ip = self.next_ip()
            name: str | None = None
            factory = self.s.netns
            if factory is not None:
                name = await asyncio.to_thread(factory.create)
                await asyncio.to_thread(factory.wire_cni_eth0, netns=name, ip=ip)
            prepared.append((name, ip))
        return prepared

    def create(
        self, *, namespace: str, name: str, netns_name: str | None, ip: str, member: bool = True
    ) -> tuple[str, float]:
        assert self.s.kube is not None
        created = self.s.kube.create(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": name,
                    "namespace": namespace,
                    "labels": dict(MEMBER_LABEL) if member else {"anchor": "true"},
                    "annotations": {labels.NETNS: netns_name} if netns_name else {},
                },
                "spec": {"nodeName": NODE, "containers": [{"name": "app", "image": "app"}]},
                "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]},
            }
        )
        return created["metadata"]["uid"], time.perf_counter()


def cpu_of(s: system.System) -> dict[str, float]:
    return {
        name: benchkit.cpu_seconds(p.pid)
        for name, p in s.processes.items()
        if p.pid is not None and p.running
    }


def cpu_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: round(after[k] - before.get(k, 0.0), 2) for k in after}


async def _until_acked(
    s: system.System, acks: Acks, created: list[tuple[str, float]], *, limit: float
) -> tuple[list[float], float | None]:
    """Wait (at most `limit`) for the acks of `created` (uid, creation time); each pod's
    latency, and the seconds from the first creation to the last ack."""
    # Without netns (not root) no pod can be stitched: the first ack naming it (with the
    # error) is then the end of the pipeline.
    done = acks.ok if s.netns is not None else acks.seen
    await benchkit.until(lambda: all(uid in done for uid, _ in created), limit=limit)
    latencies = [done[uid] - t for uid, t in created if uid in done]
    last = max((done[uid] for uid, _ in created if uid in done), default=None)
    return latencies, (last - created[0][1] if last is not None else None)


async def tailwire_burst(
    s: system.System, acks: Acks, pods: Pods, *, count: int, prefix: str, limit: float
) -> dict[str, Any]:
    prepared = await pods.prepare(count)
    load_before, cpu_before, acks_before = benchkit.load(), cpu_of(s), acks.messages
    created = [
        pods.create(namespace="bench", name=f"{prefix}-{i:04d}", netns_name=n, ip=ip)
        for i, (n, ip) in enumerate(prepared)
    ]
    latencies, span = await _until_acked(s, acks, created, limit=limit)
    return {
        "pods": count,
        "acked": sum(uid in acks.seen for uid, _ in created),
        "acked_ok": sum(uid in acks.ok for uid, _ in created),
        "latency": summary(latencies),
        "seconds_first_creation_to_last_ack": round(span, 3) if span else None,
        "pods_per_second": round(len(latencies) / span, 1) if span else None,
        "acks_published": acks.messages - acks_before,
        "service_cpu_seconds": cpu_delta(cpu_before, cpu_of(s)),
        "load_average_1m": [load_before, benchkit.load()],
    }


async def paced(
    s: system.System, acks: Acks, pods: Pods, *, rate: float, seconds: float, limit: float
) -> dict[str, Any]:
    """Pods created at a fixed rate for `seconds`: does the latency stay bounded?"""
    count = max(1, round(rate * seconds))
    prepared = await pods.prepare(count)
    load_before, cpu_before, acks_before = benchkit.load(), cpu_of(s), acks.messages
    created: list[tuple[str, float]] = []
    start = time.perf_counter()
    for i, (n, ip) in enumerate(prepared):
        await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
        created.append(
            pods.create(namespace="bench", name=f"paced{rate:g}-{i:04d}", netns_name=n, ip=ip)
        )
    latencies, span = await _until_acked(s, acks, created, limit=limit)
    return {
        "rate_offered_per_second": rate,
        "pods": count,
        "acked_ok": sum(uid in acks.ok for uid, _ in created),
        "latency": summary(latencies),
        "rate_achieved_per_second": round(len(latencies) / span, 1) if span else None,
        "acks_published": acks.messages - acks_before,
        "service_cpu_seconds": cpu_delta(cpu_before, cpu_of(s)),
        "load_average_1m": [load_before, benchkit.load()],
    }


def anchor_member(*, index: int, uid: str, netns_name: str | None) -> nodes.MemberAssignment:
    return nodes.MemberAssignment(
        pod_uid=ids.PodUID(uid),
        namespace="anchor",
        name=f"anchor-{index:04d}",
        group=ids.GroupName("anchor"),
        netns=netns_name,
        link=LINKS.addresses(index),
        routes=(nodes.CGNAT_V4, nodes.TAILNET_ULA_V6),
    )


async def anchor_run(
    s: system.System, pods: Pods, *, count: int, single: int, limit: float, period: float
) -> dict[str, Any]:
    """The anchor's design: LIST every pod every 3 s, stitch the new members. Pods one at a
    time (created at spread-out phases of the period), then the burst."""
    assert s.kube is not None
    gateway: str | None = None
    if s.netns is not None:
        gateway = await asyncio.to_thread(s.netns.create)
        await asyncio.to_thread(s.netns.set_gateway_sysctls, gateway)
        await asyncio.to_thread(s.netns.tailnet_peer, gateway=gateway)
    s.create_namespace("anchor")
    prepared = await pods.prepare(count)
    prepared_single = await pods.prepare(single)
    stitched: dict[str, tuple[float, bool]] = {}
    passes: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="bench-anchor-") as state:
        agent = reconciling.Agent(
            options=reconciling.Options(node="anchor-node", gateway_state_root=state)
        )
        api_client = await s.kube.api_client()
        async with api_client:
            core = client.CoreV1Api(api_client)
            members: dict[str, nodes.MemberAssignment] = {}

            async def one_pass(generation: int) -> None:
                t0 = time.perf_counter()
                listed = await core.list_pod_for_all_namespaces()
                t_list = time.perf_counter() - t0
                new = []
                for item in listed.items:
                    meta = item.metadata
                    if (meta.labels or {}).get("anchor") != "true" or meta.uid in members:
                        continue
                    netns_name = (meta.annotations or {}).get(labels.NETNS)
                    members[meta.uid] = anchor_member(
                        index=len(members), uid=meta.uid, netns_name=netns_name
                    )
                    new.append(meta.uid)
                if new:
                    plan = nodes.NodePlan(
                        node=ids.NodeName("anchor-node"),
                        generation=generation,
                        gateways=(
                            nodes.GatewayAssignment(
                                group=ids.GroupName("anchor"),
                                netns=gateway,
                                fwmark=0x2E,
                                table=2717,
                            ),
                        ),
                        members=tuple(members.values()),
                    )
                    ack = await agent.apply_plan(plan)
                    done = time.perf_counter()
                    for result in ack.pods:
                        if result.pod_uid in new:
                            stitched[result.pod_uid] = (done, result.ok)
                passes.append(
                    {
                        "list_s": round(t_list, 4),
                        "pods_listed": len(listed.items),
                        "new": len(new),
                        "pass_s": round(time.perf_counter() - t0, 3),
                    }
                )

            async def loop() -> None:
                generation, start = 0, time.perf_counter()
                # The loop runs on a fixed 3 s period, in phase with nothing in particular.
                while True:
                    generation += 1
                    await one_pass(generation)
                    next_at = start + generation * period
                    await asyncio.sleep(max(0.0, next_at - time.perf_counter()))

            task = asyncio.create_task(loop())
            singles: list[float] = []
            for i, (n, ip) in enumerate(prepared_single):
                # Spread the creations over the period (a pod does not know the loop's phase).
                await asyncio.sleep(period * ((0.37 + 0.61 * i) % 1.0))
                uid, t = pods.create(
                    namespace="anchor",
                    name=f"anchor-one-{i:04d}",
                    netns_name=n,
                    ip=ip,
                    member=False,
                )
                await benchkit.until(lambda: uid in stitched, limit=limit)  # noqa: B023
                if uid in stitched:
                    singles.append(stitched[uid][0] - t)
            await asyncio.sleep(period * 0.37)  # the burst lands mid-period
            load_before = benchkit.load()
            created = [
                pods.create(
                    namespace="anchor", name=f"anchor-{i:04d}", netns_name=n, ip=ip, member=False
                )
                for i, (n, ip) in enumerate(prepared)
            ]
            await benchkit.until(lambda: all(uid in stitched for uid, _ in created), limit=limit)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    latencies = [stitched[uid][0] - t for uid, t in created if uid in stitched]
    last = max((stitched[uid][0] for uid, _ in created if uid in stitched), default=None)
    span = last - created[0][1] if last is not None else None
    return {
        "single": summary(singles),
        "burst": {
            "pods": count,
            "stitched": len(latencies),
            "stitched_ok": sum(stitched[uid][1] for uid, _ in created if uid in stitched),
            "latency": summary(latencies),
            "seconds_first_creation_to_last_stitch": round(span, 3) if span else None,
            "pods_per_second": round(len(latencies) / span, 1) if span else None,
            "load_average_1m": [load_before, benchkit.load()],
        },
        "poll_period_s": period,
        "last_passes": passes[-3:],
    }


async def run(
    *,
    burst: int,
    single: int,
    limit: float,
    period: float,
    rates: tuple[float, ...],
    paced_seconds: float,
) -> dict[str, Any]:
    result: dict[str, Any] = {"benchmark": "pipeline", "python": sys.version.split()[0]}
    options = system.Options(nodes=(NODE,), log_level="WARNING")
    async with system.running(options) as s:
        result["netns"] = s.netns is not None
        acks = Acks()
        await s.admin.subscribe(subjects.node_ack(NODE), cb=acks.on_message)
        pods = Pods(s)
        s.create_namespace("bench")
        s.apply(GROUP)
        started = time.perf_counter()
        warm = await tailwire_burst(s, acks, pods, count=1, prefix="warm", limit=limit)
        result["warm_up"] = {
            "seconds": round(time.perf_counter() - started, 2),
            "acked_ok": warm["acked_ok"],
        }
        singles: list[float] = []
        for i in range(single):
            one = await tailwire_burst(s, acks, pods, count=1, prefix=f"single{i}", limit=limit)
            if one["latency"]["count"]:
                singles.append(one["latency"]["p50_s"])
        result["single"] = {**summary(singles), "load_average_1m": benchkit.load()}
        result["burst"] = await tailwire_burst(
            s, acks, pods, count=burst, prefix="burst", limit=limit
        )
        result["anchor_poll_3s"] = await anchor_run(
            s, pods, count=burst, single=single, limit=limit, period=period
        )
        # Sustained rates, after the burst (the node already holds its members).
        result["paced"] = [
            await paced(s, acks, pods, rate=rate, seconds=paced_seconds, limit=limit)
            for rate in rates
        ]
    t, a = result["burst"]["latency"], result["anchor_poll_3s"]["burst"]["latency"]
    t1, a1 = result["single"], result["anchor_poll_3s"]["single"]

    def ratio(x: float | None, y: float | None) -> float | None:
        return round(x / y, 2) if x is not None and y else None

    result["ratios_anchor_to_tailwire"] = {
        "single": {key: ratio(a1.get(key), t1.get(key)) for key in ("p50_s", "p99_s", "max_s")},
        "burst": {key: ratio(a.get(key), t.get(key)) for key in ("p50_s", "p99_s", "max_s")},
    }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--burst", type=int, default=200)
    parser.add_argument("--single", type=int, default=10)
    parser.add_argument("--limit", type=float, default=180.0, help="seconds per phase, at most")
    parser.add_argument("--period", type=float, default=POLL_PERIOD, help="the anchor's poll")
    parser.add_argument("--rates", default="5,10,20", help="paced pods per second")
    parser.add_argument("--paced-seconds", type=float, default=8.0)
    parser.add_argument("--quick", action="store_true", help="a small smoke run (0.5 s poll)")
    args = parser.parse_args()
    if args.quick:
        args.burst, args.single, args.limit, args.period = 5, 1, 30.0, 0.5
        args.rates, args.paced_seconds = "5", 1.0
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
    with contextlib.redirect_stdout(sys.stderr):
        result = asyncio.run(
            run(
                burst=args.burst,
                single=args.single,
                limit=args.limit,
                period=args.period,
                rates=tuple(float(r) for r in args.rates.split(",")),
                paced_seconds=args.paced_seconds,
            )
        )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
