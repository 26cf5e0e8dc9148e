"""Real processes and faithful fakes for the tests and for `tailwire dev`.

A real `nats-server`, an emulated Kubernetes API, a local stand-in for the Tailscale control
API, network namespaces. Services never import this package (import-linter enforces it):
they meet these things only through their adapters, as they would meet the real ones.
"""
