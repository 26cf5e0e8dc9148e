"""watcher: mirrors Kubernetes objects onto `tailwire.v1.cluster.>` as normalized snapshots.

It translates and never decides: no membership, no validation beyond shape. It only reads
the Kubernetes API and only publishes snapshots.
"""
