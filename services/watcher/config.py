"""The watcher's own settings (`TAILWIRE_WATCH_*`): what to watch and how patiently.

Where the Kubernetes API is and which namespaces are in scope come from the shared
`KubernetesSettings` (`TAILWIRE_KUBECONFIG`, `TAILWIRE_WATCH_NAMESPACES`). This module must
not connect to anything.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from tailwire.shared import settings, subjects


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class WatcherSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=settings.PREFIX, extra="ignore", frozen=True)

    # Kinds to mirror; empty means all of them (DESIGN.md's nine).
    watch_kinds: Annotated[list[subjects.Kind], NoDecode] = Field(default_factory=list)
    # Optional label selector for the pod watch (e.g. "tailwire.dev/egress=true").
    watch_pod_label_selector: str | None = None
    # A full relist this often, republishing only what differs (seconds).
    watch_resync_interval: float = Field(default=900.0, gt=0)
    # The server ends each watch after this long; the watcher resumes from its version.
    watch_timeout: int = Field(default=300, ge=1)
    # Retry pacing: exponential with jitter between these bounds (seconds).
    watch_backoff_initial: float = Field(default=0.5, gt=0)
    watch_backoff_max: float = Field(default=30.0, gt=0)
    # How often a resource whose CRD is not installed is looked for again (seconds).
    watch_missing_crd_retry: float = Field(default=60.0, gt=0)
    # Publishes awaiting their JetStream ack at once, per resource (never two per subject).
    watch_publish_window: int = Field(default=16, ge=1, le=4096)
    # Page size of the list calls.
    watch_list_page_size: int = Field(default=500, ge=1)

    _split = field_validator("watch_kinds", mode="before")(_split_csv)
