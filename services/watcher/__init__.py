"""watcher: mirrors Kubernetes objects onto `tailwire.v1.cluster.>` as normalized snapshots.

It translates and never decides: no membership, no validation beyond shape. It only reads
the Kubernetes API and only publishes snapshots.

What it mirrors (list-then-watch each, kubernetes-asyncio over the kubectl-style config):
Pods, Namespaces, Nodes, Services, Gateways and HTTPRoutes (`gateway.networking.k8s.io/v1`),
EgressGroups, TailscaleGateways and TailscaleTailnets. Services are mirrored only when
`spec.loadBalancerClass` is `tailscale`, when they carry a `tailwire.dev/` label or
`app.kubernetes.io/managed-by: tailwire`, or when they are named `gateway-internal` or
`<anything>-gateway-internal` (the in-cluster gateway Service of the seed documents). A
Service that stops matching gets a tombstone.

Settings (`TAILWIRE_*`): `WATCH_NAMESPACES` (comma-separated; empty: all),
`WATCH_POD_LABEL_SELECTOR`, `WATCH_KINDS`, `WATCH_RESYNC_INTERVAL` (900 s),
`WATCH_TIMEOUT` (300 s), `WATCH_BACKOFF_INITIAL`/`_MAX` (0.5 s / 30 s),
`WATCH_MISSING_CRD_RETRY` (60 s), `WATCH_PUBLISH_WINDOW` (16), `WATCH_LIST_PAGE_SIZE` (500).

Metrics on `/metrics` (`TAILWIRE_HEALTH_PORT`): `tailwire_watcher_events_total{kind,type}`,
`_published_total{kind}`, `_suppressed_total{kind}`, `_relists_total{kind,reason}`,
`_rejected_total{kind}`, `_api_reachable`, `_resource_available{kind}`.
"""
