"""The watcher's Prometheus metrics, in the process's default registry (served on /metrics).

Must not: hold logic; callers count what happened.
"""

from __future__ import annotations

import prometheus_client

EVENTS = prometheus_client.Counter(
    "tailwire_watcher_events",
    "Watch events received from the Kubernetes API",
    ["kind", "type"],
)
PUBLISHED = prometheus_client.Counter(
    "tailwire_watcher_published",
    "Snapshots and tombstones published and acknowledged by JetStream",
    ["kind"],
)
SUPPRESSED = prometheus_client.Counter(
    "tailwire_watcher_suppressed",
    "Changes not published because the normalized snapshot did not change",
    ["kind"],
)
RELISTS = prometheus_client.Counter(
    "tailwire_watcher_relists",
    "Full lists: start, expired (410 Gone), resync, reconnect",
    ["kind", "reason"],
)
REJECTED = prometheus_client.Counter(
    "tailwire_watcher_rejected",
    "Objects that could not be normalized (logged with the field)",
    ["kind"],
)
API_REACHABLE = prometheus_client.Gauge(
    "tailwire_watcher_api_reachable",
    "1 when the last call to the Kubernetes API succeeded, else 0",
)
RESOURCE_AVAILABLE = prometheus_client.Gauge(
    "tailwire_watcher_resource_available",
    "1 when the resource is served (its CRD is installed), else 0",
    ["kind"],
)
PUBLISH_LAG = prometheus_client.Histogram(
    "tailwire_watcher_publish_lag_seconds",
    "Time from a change being decided (watch event normalized) to JetStream's ack, "
    "queueing and retries included",
    ["kind"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0),
)
PUBLISH_FAILURES = prometheus_client.Counter(
    "tailwire_watcher_publish_failures",
    "Publishes that failed and were retried (NATS unreachable, no stream ack)",
    ["kind"],
)
