"""The library every tailwire service uses.

It holds what two or more services must agree on: settings, subjects, event models, resource
models, the bus wiring, telemetry and the exception tree. It must not hold a service's
decisions (those live in `tailwire.services.<name>.domain`) and must never import a service,
the CLI or the test tooling.
"""
