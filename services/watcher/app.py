"""Wiring of the watcher: settings -> broker -> routers -> lifespan. No logic lives here."""

from __future__ import annotations

from opentelemetry.sdk.trace import TracerProvider

from tailwire.shared import runtime, settings, subjects


def create(
    *,
    bus_settings: settings.BusSettings | None = None,
    tracer_provider: TracerProvider | None = None,
) -> runtime.ServiceRuntime:
    """The watcher's runtime, from `TAILWIRE_*` settings unless given."""
    return runtime.build_app(
        service=subjects.Service.WATCHER,
        bus_settings=bus_settings,
        tracer_provider=tracer_provider,
    )
