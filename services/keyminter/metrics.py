"""The keyminter's Prometheus metrics, in the process's default registry (served on /metrics).

Must not: hold logic, or label anything with a key, a key id or an owner's name.
"""

from __future__ import annotations

import prometheus_client

REQUESTS = prometheus_client.Counter(
    "tailwire_keyminter_requests",
    "Key requests handled (mint or reuse: ensure; revoke), by outcome: ok or the failure "
    "reason published on keys.failed (NotConfigured, AuthenticationFailed, ...)",
    ["operation", "outcome"],
)
REQUEST_SECONDS = prometheus_client.Histogram(
    "tailwire_keyminter_request_seconds",
    "Time to handle one key request, control-API calls and Secret writes included",
    ["operation"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
RENEWED = prometheus_client.Counter(
    "tailwire_keyminter_renewed",
    "Keys replaced by the renewal pass before they expired",
)
BUS_AUTH = prometheus_client.Counter(
    "tailwire_keyminter_bus_auth",
    "NATS auth-callout answers for nodeagent connections, by outcome: granted, refused "
    "(the token does not prove a nodeagent on a node), or review_failed (API unreachable)",
    ["outcome"],
)
TAILNET_CHECKS = prometheus_client.Counter(
    "tailwire_keyminter_tailnet_checks",
    "Checks of a TailscaleTailnet's control API with its Secret's credentials, by outcome: "
    "Connected or the failure reason (NotConfigured, AuthenticationFailed, ...)",
    ["outcome"],
)
