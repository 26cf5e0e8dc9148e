"""The renderer's Prometheus metrics, in the process's default registry (served on /metrics).

Must not: hold logic; callers count what happened.
"""

from __future__ import annotations

import prometheus_client

RECONCILES = prometheus_client.Counter(
    "tailwire_renderer_reconciles",
    "Computations of the desired state (one per coalesced batch of changes), by outcome",
    ["outcome"],
)
RECONCILE_SECONDS = prometheus_client.Histogram(
    "tailwire_renderer_reconcile_seconds",
    "Time of one computation: render, decide, publish what changed",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
PUBLISHED = prometheus_client.Counter(
    "tailwire_renderer_published",
    "Outputs published because they changed, by subject area (node, gateway, keys, status)",
    ["area"],
)
SYNC_PASSES = prometheus_client.Counter(
    "tailwire_renderer_sync_passes",
    "Passes applying manifests, statuses and finalizers to the Kubernetes API, by outcome",
    ["outcome"],
)
SYNC_SECONDS = prometheus_client.Histogram(
    "tailwire_renderer_sync_seconds",
    "Time of one pass applying the desired objects to the Kubernetes API",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
