"""lastTransitionTime for the statuses the computations return without a clock.

The ingress computation is deterministic (no wall clock, so `tailwire render` is
byte-for-byte stable and an unchanged cluster writes nothing). The running renderer gives
its conditions their time here: a condition keeps the time of the last published summary
while its status stays the same, and takes `now` when it is new or its status changed (the
Kubernetes convention). The summary on the bus and the status written to the resource get
the same times; the published summaries survive a restart, so do the times.
Must not: do I/O or read a clock (the caller passes `now`).
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Mapping, Sequence
from typing import Any

import pydantic

from tailwire.services.renderer import domain
from tailwire.shared.events import base, status

_TIME = pydantic.TypeAdapter(datetime.datetime)


def transition_time(
    before: base.Condition | None, *, value: str, now: datetime.datetime
) -> datetime.datetime:
    """When a condition whose status is now `value` last changed, given its previous form."""
    if before is not None and before.status == value and before.last_transition_time:
        return before.last_transition_time
    return now


def _stamped(
    conditions: Sequence[base.Condition],
    *,
    previous: Sequence[base.Condition],
    now: datetime.datetime,
) -> tuple[base.Condition, ...]:
    before = {c.type: c for c in previous}
    return tuple(
        c.model_copy(
            update={
                "last_transition_time": transition_time(before.get(c.type), value=c.status, now=now)
            }
        )
        for c in conditions
    )


def _owner(kind: str, namespace: str | None, name: str) -> tuple[str, str, str]:
    return kind.lower(), namespace or "", name


def _reference_owner(reference: domain.Manifest) -> tuple[str, str, str]:
    metadata = reference.get("metadata") or {}
    return _owner(str(reference.get("kind", "")), metadata.get("namespace"), metadata["name"])


def _with_times(document: dict[str, Any], times: Mapping[str, datetime.datetime]) -> dict[str, Any]:
    conditions = document.get("conditions")
    if not isinstance(conditions, list):
        return document
    return {
        **document,
        "conditions": [
            {**c, "lastTransitionTime": _TIME.dump_python(times[c["type"]], mode="json")}
            if isinstance(c, dict) and c.get("type") in times
            else c
            for c in conditions
        ],
    }


def stamp(
    rendered: domain.Rendered,
    *,
    previous: Mapping[str, status.StatusSummary],
    now: datetime.datetime,
) -> domain.Rendered:
    """`rendered` with a lastTransitionTime on every condition of its summaries and of the
    status documents of the same objects; `previous` is the last summary per subject."""
    summaries = []
    times: dict[tuple[str, str, str], dict[str, datetime.datetime]] = {}
    for subject, summary in rendered.summaries:
        before = previous.get(subject)
        conditions = _stamped(
            summary.conditions, previous=before.conditions if before else (), now=now
        )
        summaries.append((subject, summary.model_copy(update={"conditions": conditions})))
        times[_owner(summary.kind, summary.namespace, summary.name)] = {
            c.type: c.last_transition_time or now for c in conditions
        }
    statuses = tuple(
        (reference, _with_times(document, times.get(_reference_owner(reference), {})))
        for reference, document in rendered.statuses
    )
    return dataclasses.replace(rendered, statuses=statuses, summaries=tuple(summaries))
