"""Status summaries for integrations: `tailwire.v1.status.<kind>.<ns or _>.<name>`.

The same conditions the renderer writes to the resource's status, plus the few numbers an
integration wants without reading the Kubernetes API. When the object is deleted, one last
summary with `deleted: true` (and no conditions) says so; it expires with the bus's
tombstone TTL, and the subject with it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from tailwire.shared.events import base


class StatusSummary(base.Event):
    type: Literal["status.summary"] = "status.summary"
    kind: str
    namespace: str | None = None
    name: str
    generation: int | None = None
    observed_generation: int | None = None
    ready: bool
    conditions: tuple[base.Condition, ...] = ()
    details: dict[str, Any] = Field(default_factory=dict)
    # The object is gone: its last summary, kept on the subject for the bus's tombstone TTL.
    deleted: bool = False
