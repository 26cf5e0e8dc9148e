"""lastTransitionTime for the statuses the computations return without a clock.

The ingress computation is deterministic (no wall clock, so `tailwire render` is
byte-for-byte stable and an unchanged cluster writes nothing). The running renderer gives
its conditions their time here: a condition keeps the time of the last published summary
while its status stays the same, and takes `now` when it is new or its status changed (the
Kubernetes convention). The summary on the bus and the status written to the resource get
the same times; the published summaries survive a restart, so do the times. Likewise
`lastReconciled` (in the summary's details and a TailscaleGateway's `gatewayInfo`): when what
the renderer reports for the object last changed.
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
# In a summary's details and a TailscaleGateway's status.gatewayInfo (the seed's field).
LAST_RECONCILED = "lastReconciled"


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


def _without_reconciled(summary: status.StatusSummary) -> status.StatusSummary:
    details = {k: v for k, v in summary.details.items() if k != LAST_RECONCILED}
    return summary.model_copy(update={"details": details})


def _reconciled_at(
    summary: status.StatusSummary, *, before: status.StatusSummary | None, now: datetime.datetime
) -> str:
    """When what the renderer reports for the object last changed: the previous time if
    nothing but that time differs, else now."""
    if before is None:
        return str(_TIME.dump_python(now, mode="json"))
    kept = before.details.get(LAST_RECONCILED)
    if isinstance(kept, str) and _without_reconciled(before) == _without_reconciled(summary):
        return kept
    return str(_TIME.dump_python(now, mode="json"))


def _with_reconciled(document: dict[str, Any], when: str | None) -> dict[str, Any]:
    info = document.get("gatewayInfo")
    if when is None or not isinstance(info, dict):
        return document
    return {**document, "gatewayInfo": {**info, LAST_RECONCILED: when}}


def stamp(
    rendered: domain.Rendered,
    *,
    previous: Mapping[str, status.StatusSummary],
    now: datetime.datetime,
) -> domain.Rendered:
    """`rendered` with a lastTransitionTime on every condition of its summaries and of the
    status documents of the same objects, and their lastReconciled; `previous` is the last
    summary per subject."""
    summaries = []
    times: dict[tuple[str, str, str], dict[str, datetime.datetime]] = {}
    reconciled: dict[tuple[str, str, str], str] = {}
    for subject, summary in rendered.summaries:
        before = previous.get(subject)
        conditions = _stamped(
            summary.conditions, previous=before.conditions if before else (), now=now
        )
        stamped = summary.model_copy(update={"conditions": conditions})
        changed_at = _reconciled_at(stamped, before=before, now=now)
        stamped = stamped.model_copy(
            update={"details": {**stamped.details, LAST_RECONCILED: changed_at}}
        )
        summaries.append((subject, stamped))
        owner = _owner(summary.kind, summary.namespace, summary.name)
        times[owner] = {c.type: c.last_transition_time or now for c in conditions}
        reconciled[owner] = changed_at
    statuses = tuple(
        (
            reference,
            _with_reconciled(
                _with_times(document, times.get(_reference_owner(reference), {})),
                reconciled.get(_reference_owner(reference)),
            ),
        )
        for reference, document in rendered.statuses
    )
    return dataclasses.replace(rendered, statuses=statuses, summaries=tuple(summaries))
