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
