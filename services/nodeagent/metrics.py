"""The nodeagent's Prometheus metrics, in the process's default registry (served on /metrics).

Must not: hold logic, or label anything with a pod's name or uid (counts only).
"""

from __future__ import annotations

import prometheus_client

APPLIES = prometheus_client.Counter(
    "tailwire_nodeagent_applies",
    "Plan applications (new plans and retries), by outcome: ok, or failed when a pod or "
    "gateway of the plan failed",
    ["outcome"],
)
APPLY_SECONDS = prometheus_client.Histogram(
    "tailwire_nodeagent_apply_seconds",
    "Time to reconcile the kernel with one plan (read, diff, write)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
WRITES = prometheus_client.Counter(
    "tailwire_nodeagent_writes",
    "Netlink, nftables and sysctl writes made (0 for an unchanged plan)",
)
PODS = prometheus_client.Gauge(
    "tailwire_nodeagent_pods",
    "Members in the last applied plan, by result (ok, failed)",
    ["result"],
)
GENERATION = prometheus_client.Gauge(
    "tailwire_nodeagent_plan_generation",
    "Generation of the last applied plan (compare with the renderer's published plans)",
)
