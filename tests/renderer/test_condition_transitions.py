"""lastTransitionTime on the statuses computations return without a clock: kept while a
condition's status stays, `now` when it is new or flips; summary and status document agree."""

from __future__ import annotations

import datetime

from tailwire.services.renderer import domain, transitions
from tailwire.shared.events import base, status

T0 = datetime.datetime(2026, 11, 1, 8, 0, tzinfo=datetime.UTC)
NOW = datetime.datetime(2026, 11, 22, 9, 30, tzinfo=datetime.UTC)
SUBJECT = "tailwire.v1.status.tailscalegateway.apps.gw"
REFERENCE = {
    "apiVersion": "gateway.tailscale.com/v1alpha1",
    "kind": "TailscaleGateway",
    "metadata": {"name": "gw", "namespace": "apps"},
}


def _condition(type_: str, value: str, *, at: datetime.datetime | None = None) -> base.Condition:
    return base.Condition(
        type=type_,
        status=value,  # type: ignore[arg-type]
        reason="Why",
        message=f"{type_} is {value}",
        last_transition_time=at,
    )


def _summary(*conditions: base.Condition) -> status.StatusSummary:
    return status.StatusSummary(
        kind="tailscalegateway", namespace="apps", name="gw", ready=False, conditions=conditions
    )


def _rendered(*conditions: base.Condition) -> domain.Rendered:
    document = {
        "conditions": [
            {"type": c.type, "status": c.status, "reason": c.reason, "message": c.message}
            for c in conditions
        ],
        "observedGeneration": 3,
    }
    return domain.Rendered(
        statuses=((REFERENCE, document),), summaries=((SUBJECT, _summary(*conditions)),)
    )


def _times(rendered: domain.Rendered) -> tuple[dict[str, object], dict[str, object]]:
    [(_, summary)] = rendered.summaries
    [(_, document)] = rendered.statuses
    return (
        {c.type: c.last_transition_time for c in summary.conditions},
        {c["type"]: c["lastTransitionTime"] for c in document["conditions"]},
    )


def test_first_publication_stamps_every_condition_with_now() -> None:
    stamped = transitions.stamp(
        _rendered(_condition("Ready", "False"), _condition("Degraded", "False")),
        previous={},
        now=NOW,
    )
    on_bus, on_resource = _times(stamped)
    assert on_bus == {"Ready": NOW, "Degraded": NOW}
    assert on_resource == {"Ready": "2026-11-22T09:30:00Z", "Degraded": "2026-11-22T09:30:00Z"}


def test_a_condition_keeps_its_time_while_its_status_stays_and_moves_when_it_flips() -> None:
    previous = {
        SUBJECT: _summary(
            _condition("Ready", "False", at=T0), _condition("Degraded", "False", at=T0)
        )
    }
    stamped = transitions.stamp(
        _rendered(_condition("Ready", "True"), _condition("Degraded", "False")),
        previous=previous,
        now=NOW,
    )
    on_bus, on_resource = _times(stamped)
    assert on_bus == {"Ready": NOW, "Degraded": T0}
    assert on_resource == {"Ready": "2026-11-22T09:30:00Z", "Degraded": "2026-11-01T08:00:00Z"}


def test_an_unchanged_status_stamps_to_exactly_the_previous_summary() -> None:
    # What lets the renderer skip publishing (and writing) an unchanged status.
    first = transitions.stamp(_rendered(_condition("Ready", "True")), previous={}, now=T0)
    [(subject, summary)] = first.summaries
    again = transitions.stamp(
        _rendered(_condition("Ready", "True")), previous={subject: summary}, now=NOW
    )
    assert again == first


def test_the_rest_of_the_rendered_output_is_untouched() -> None:
    manifest = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"}}
    rendered = domain.Rendered(manifests=(manifest,), documents=(manifest,))
    assert transitions.stamp(rendered, previous={}, now=NOW) == rendered


def _gateway_rendered(route_count: int) -> domain.Rendered:
    ready = _condition("Ready", "True")
    document = {
        "conditions": [{"type": "Ready", "status": "True", "reason": "Why", "message": ""}],
        "gatewayInfo": {"listenerCount": 1, "routeCount": route_count},
    }
    summary = _summary(ready).model_copy(update={"details": {"routeCount": route_count}})
    return domain.Rendered(statuses=((REFERENCE, document),), summaries=((SUBJECT, summary),))


def test_last_reconciled_moves_only_when_what_is_reported_changes() -> None:
    first = transitions.stamp(_gateway_rendered(1), previous={}, now=T0)
    [(_, summary)] = first.summaries
    [(_, document)] = first.statuses
    assert summary.details["lastReconciled"] == "2026-11-01T08:00:00Z"
    assert document["gatewayInfo"] == {
        "listenerCount": 1,
        "routeCount": 1,
        "lastReconciled": "2026-11-01T08:00:00Z",
    }

    same = transitions.stamp(_gateway_rendered(1), previous={SUBJECT: summary}, now=NOW)
    assert same == first

    more = transitions.stamp(_gateway_rendered(2), previous={SUBJECT: summary}, now=NOW)
    [(_, summary)] = more.summaries
    [(_, document)] = more.statuses
    assert summary.details["lastReconciled"] == "2026-11-22T09:30:00Z"
    assert document["gatewayInfo"]["lastReconciled"] == "2026-11-22T09:30:00Z"
    # The Ready condition did not flip: its transition time stays.
    assert summary.conditions[0].last_transition_time == T0
