"""Benchmark of the nodeagent's datapath: stitch N member pods on one node, re-apply the
unchanged plan, adopt after a restart, and remove them all. Prints JSON.

Real network namespaces (root): one gateway netns with a simulated tailnet peer behind
`tailscale0`, N pod netns, all created here and removed afterwards. Only namespaces this
process created are touched; no traffic leaves them. Usage: `python bench/bench_nodeagent.py
[--pods 250]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from tailwire.services.nodeagent import reconciling
from tailwire.shared import ids
from tailwire.shared.events import nodes
from tailwire.testing import netns


def member(*, index: int, pod: str) -> nodes.MemberAssignment:
    v4 = 2 * index
    return nodes.MemberAssignment(
        pod_uid=ids.PodUID(f"bench-{index:04d}"),
        namespace="bench",
        name=f"pod-{index}",
        group=ids.GroupName("bench"),
        netns=pod,
        link=nodes.LinkAddresses(
            member_v4=f"169.254.{64 + v4 // 256}.{v4 % 256 + 1}/31",
            gateway_v4=f"169.254.{64 + v4 // 256}.{v4 % 256}/31",
            member_v6=f"fd7a:115c:a1e0:ab12:4843::{v4 + 1:x}/127",
            gateway_v6=f"fd7a:115c:a1e0:ab12:4843::{v4:x}/127",
        ),
        routes=(nodes.CGNAT_V4, nodes.TAILNET_ULA_V6),
        exit_node=index % 2 == 0,
        carve_outs=("10.244.0.0/16", "10.96.0.0/12") if index % 2 == 0 else (),
    )


def plan(*, gateway: str, members: list[nodes.MemberAssignment], generation: int) -> nodes.NodePlan:
    return nodes.NodePlan(
        node=ids.NodeName("bench-node"),
        generation=generation,
        gateways=(
            nodes.GatewayAssignment(
                group=ids.GroupName("bench"), netns=gateway, fwmark=0x1E, table=1717
            ),
        ),
        members=tuple(members),
    )


def summary(ack: nodes.NodeAck, *, seconds: float) -> dict[str, float | int | None]:
    per_pod = [p.duration_ms for p in ack.pods]
    return {
        "seconds": round(seconds, 3),
        "netlink_writes": ack.netlink_writes,
        "failed_pods": sum(not p.ok for p in ack.pods),
        "pods_per_second": round(len(ack.pods) / seconds, 1) if ack.pods and seconds else None,
        "per_pod_ms_mean": round(statistics.fmean(per_pod), 3) if per_pod else None,
        "per_pod_ms_p50": round(statistics.median(per_pod), 3) if per_pod else None,
        "per_pod_ms_p95": round(statistics.quantiles(per_pod, n=20)[18], 3)
        if len(per_pod) >= 20
        else None,
    }


async def run(pods: int) -> dict[str, object]:
    result: dict[str, object] = {
        "benchmark": "nodeagent",
        "pods": pods,
        "load_average_1m": os.getloadavg()[0],
        "cpus": os.cpu_count(),
    }
    with netns.NetnsFactory() as factory, tempfile.TemporaryDirectory() as state:
        gateway = factory.create()
        factory.tailnet_peer(gateway=gateway)
        started = time.perf_counter()
        names = [factory.create() for _ in range(pods)]
        result["setup_netns_seconds"] = round(time.perf_counter() - started, 3)
        members = [member(index=i, pod=name) for i, name in enumerate(names)]
        options = reconciling.Options(node="bench-node", gateway_state_root=str(Path(state)))

        agent = reconciling.Agent(options=options)
        for label, generation, fresh in (
            ("stitch", 1, False),
            ("reapply_unchanged", 2, False),
            ("adopt_after_restart", 3, True),
        ):
            if fresh:
                agent = reconciling.Agent(options=options)
            t0, cpu0 = time.perf_counter(), time.process_time()
            ack = await agent.apply_plan(
                plan(gateway=gateway, members=members, generation=generation)
            )
            result[label] = {
                **summary(ack, seconds=time.perf_counter() - t0),
                "cpu_seconds": round(time.process_time() - cpu0, 3),
            }
        t0 = time.perf_counter()
        ack = await agent.apply_plan(plan(gateway=gateway, members=[], generation=4))
        result["remove_all"] = {
            "seconds": round(time.perf_counter() - t0, 3),
            "removed": len(ack.removed),
            "netlink_writes": ack.netlink_writes,
        }
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pods", type=int, default=250)
    args = parser.parse_args()
    reason = netns.unavailable_reason()
    if reason is not None:
        print(json.dumps({"benchmark": "nodeagent", "skipped": reason}))
        return 0
    print(json.dumps(asyncio.run(run(args.pods)), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
