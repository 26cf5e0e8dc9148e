"""renderer: the one place desired state is computed.

From cluster snapshots, key events and node acks it derives manifests (server-side apply),
node plans, gateway configs and resource status. It never touches a node or a DNS backend.

Structure (both sides share the first four):
- `view.py`: the materialized cluster view (latest snapshot per object), fed by the bus or,
  for `tailwire render`, by manifests (`snapshot_from_manifest`).
- `domain.py`: `RenderInput` -> `Rendered` (manifests, prune scopes, status documents,
  offline documents) and the `Renderer` protocol of a computation.
- `renderers.py`: `RENDERERS`, the computations `tailwire render` prints in order; every one
  but egress is also run live (`renderers.live()`): its manifests are server-side applied
  (field manager `tailwire`), objects under its prune scopes that carry
  `app.kubernetes.io/managed-by=tailwire` and are no longer desired are deleted, and its
  statuses merge-patched onto `/status`. A computation that raises applies nothing.
- `adapters/`: `kube.KubeWriter` (apply, prune, status, finalizers) and `syncing.ManifestSync`
  (retries while the API is unreachable; the bus side never waits for it).
- `egress/` (EgressGroups: membership, routes, links, plans, configs, keys, status) and
  `ingress/` (TailscaleGateways): pure computations; `handlers.py` drives egress with its
  plans, key events and acks, `app.py` wires it all.
"""
