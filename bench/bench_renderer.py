"""Renderer benchmark: plan computation time and plan size for 10,000 pods, 100 groups and
50 nodes (the issue's figures). Pure computation, no bus, no network; prints JSON.

Run: .venv/bin/python bench/bench_renderer.py [--pods N --groups N --nodes N --rounds N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from tailwire.services.renderer import view
from tailwire.services.renderer.egress import options, outputs, rendering
from tailwire.shared.events import base, cluster


def build_view(*, pods: int, groups: int, nodes: int) -> view.ClusterView:
    v = view.ClusterView()
    namespaces = max(1, groups // 2)
    for n in range(namespaces):
        v.apply(cluster.NamespaceSnapshot(meta=cluster.Meta(uid=f"ns{n}", name=f"ns-{n}")))
    for n in range(nodes):
        v.apply(cluster.NodeSnapshot(meta=cluster.Meta(uid=f"node{n}", name=f"node-{n}")))
    for g in range(groups):
        spec = {
            "selector": {
                "namespaceSelector": {
                    "matchLabels": {"kubernetes.io/metadata.name": f"ns-{g % namespaces}"}
                },
                "podSelector": {"matchLabels": {"egress": f"g{g}"}},
            },
            "mode": "subnet",
            "routes": ["10.0.0.0/8", f"192.168.{g % 256}.0/24"],
        }
        if g % 10 == 0:
            spec["exitNode"] = {"nodeID": "exit-1", "allowLANAccess": True}
        v.apply(
            cluster.EgressGroupSnapshot(
                meta=cluster.Meta(uid=f"eg{g}", name=f"group-{g}", generation=1),
                api_version="tailscale.rajsingh.info/v1alpha1",
                spec=spec,
            )
        )
    for p in range(pods):
        g = p % groups
        v.apply(
            cluster.PodSnapshot(
                meta=cluster.Meta(
                    uid=f"00000000-0000-4000-8000-{p:012d}",
                    namespace=f"ns-{g % namespaces}",
                    name=f"pod-{p}",
                    labels={"egress": f"g{g}", "app": f"app-{p % 37}"},
                ),
                node_name=f"node-{(p * 7) % nodes}",
                phase="Running",
                pod_ips=(f"10.244.{p // 250}.{p % 250}",),
            )
        )
    return v


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pods", type=int, default=10_000)
    parser.add_argument("--groups", type=int, default=100)
    parser.add_argument("--nodes", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="a small smoke run")
    args = parser.parse_args()
    if args.quick:
        args.pods, args.groups, args.nodes, args.rounds = 500, 10, 5, 1
    opts = options.Options()
    v = build_view(pods=args.pods, groups=args.groups, nodes=args.nodes)

    cold: list[float] = []
    for _ in range(args.rounds):
        start = time.perf_counter()
        result = rendering.render_egress(view=v, opts=opts)
        cold.append(time.perf_counter() - start)
    published = outputs.Published()
    start = time.perf_counter()
    decision = outputs.decide(
        result=result, published=published, key_events={}, acks={}, now=base.utcnow()
    )
    decide_first = time.perf_counter() - start
    for item in decision.outgoing:
        published.record(item)

    # One pod joins: the full recomputation plus the diff, which publishes one plan.
    v.apply(
        cluster.PodSnapshot(
            meta=cluster.Meta(
                uid="ffffffff-0000-4000-8000-000000000000",
                namespace="ns-0",
                name="newcomer",
                labels={"egress": "g0"},
            ),
            node_name="node-3",
            phase="Running",
        )
    )
    warm: list[float] = []
    changed_plans = 0
    for _ in range(args.rounds):
        start = time.perf_counter()
        again = rendering.render_egress(view=v, opts=opts, previous=published.plans)
        step = outputs.decide(
            result=again, published=published, key_events={}, acks={}, now=base.utcnow()
        )
        warm.append(time.perf_counter() - start)
        changed_plans = sum(1 for item in step.outgoing if item.table == "plans")

    sizes = [len(p.to_bytes()) for p in result.plans.values()]
    print(
        json.dumps(
            {
                "pods": args.pods,
                "groups": args.groups,
                "nodes": args.nodes,
                "members": sum(len(p.members) for p in result.plans.values()),
                "render_seconds_median": round(statistics.median(cold), 4),
                "render_seconds_max": round(max(cold), 4),
                "first_decide_seconds": round(decide_first, 4),
                "one_pod_joins_render_and_diff_seconds_median": round(statistics.median(warm), 4),
                "plans_published_after_one_pod_joins": changed_plans,
                "plan_bytes_mean": round(statistics.mean(sizes)),
                "plan_bytes_max": max(sizes),
                "plan_bytes_total": sum(sizes),
                "messages_first_pass": len(decision.outgoing),
                "manifests": len(result.manifests),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
