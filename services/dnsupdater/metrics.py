"""The dnsupdater's Prometheus metrics, in the process's default registry (served on /metrics).

Must not: hold logic; callers count what happened.
"""

from __future__ import annotations

import prometheus_client

RECONCILES = prometheus_client.Counter(
    "tailwire_dns_reconciles",
    "Reconcile passes, by trigger (event, repair, retry)",
    ["trigger"],
)
CHANGES = prometheus_client.Counter(
    "tailwire_dns_changes",
    "Changes applied to a resolver backend (one per zone, backend and pass)",
    ["zone", "backend"],
)
RECORDS = prometheus_client.Counter(
    "tailwire_dns_records",
    "Records added or removed on a resolver backend",
    ["zone", "backend", "op"],
)
DRIFT = prometheus_client.Counter(
    "tailwire_dns_drift_repaired",
    "Changes made by a periodic repair (actual state differed from what was applied)",
    ["zone", "backend"],
)
FAILURES = prometheus_client.Counter(
    "tailwire_dns_failures",
    "Backend writes or reads that failed (retried)",
    ["target", "error"],
)
NAME_CONFLICTS = prometheus_client.Gauge(
    "tailwire_dns_name_conflicts",
    "HTTPRoute hostname claims refused because an older route of another namespace has the name",
)
ANNOTATION_PATCHES = prometheus_client.Counter(
    "tailwire_dns_annotation_patches",
    "ExternalDNS annotation patches sent, by object kind",
    ["kind"],
)
APPLY_SECONDS = prometheus_client.Histogram(
    "tailwire_dns_apply_seconds",
    "Time to apply one change to a backend",
    ["backend"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
RECONCILE_SECONDS = prometheus_client.Histogram(
    "tailwire_dns_reconcile_seconds",
    "Time of one reconcile pass over every zone and backend (reads on repair included)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
