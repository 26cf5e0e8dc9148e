"""Egress groups, computed: membership, routes, link addresses, gateway configs, manifests,
node plans and status, from the cluster view alone.

Pure: frozen values and functions, no I/O and no framework (the same rules as `domain`);
the handlers feed it the view and publish or apply what it returns, and `tailwire render`
runs the very same functions offline.
"""
