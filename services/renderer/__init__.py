"""renderer: the one place desired state is computed.

From cluster snapshots, key events and node acks it derives manifests (server-side apply),
node plans, gateway configs and resource status. It never touches a node or a DNS backend.
"""
