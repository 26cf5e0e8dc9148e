"""Where each TailscaleTailnet stands, and its status: the renderer's third computation.

A tailnet is `Invalid` (its spec does not validate), `Pending` (valid, not yet checked at
its current uid and generation: a recreated tailnet is checked anew), `Connected` (the
keyminter's last check found its control API accepting the Secret's credentials) or
`Disconnected` (that check failed; the reason is the one `keys.failed` would give). A name
no TailscaleTailnet has is `NotFound`. The ingress side shows the same states in a
TailscaleGateway's `tailnets[]` (`state_of`).

The status holds the condition `Ready`, `tailnetInfo.name` and `lastConnected`; times come
from the keyminter's events, never from a clock here, so an unchanged tailnet gives an
unchanged status and the renderer writes nothing. Must not: do I/O.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Mapping
from typing import Any, Literal

from tailwire.services.renderer import domain
from tailwire.shared import subjects
from tailwire.shared.events import cluster, keys
from tailwire.shared.events import status as status_events
from tailwire.shared.resources import common, conditions, loading, tailscaletailnet

CONNECTED = "Connected"
DISCONNECTED = "Disconnected"
PENDING = "Pending"
NOT_FOUND = "NotFound"
INVALID = "Invalid"

Checks = Mapping[str, keys.TailnetChecked]


@dataclasses.dataclass(frozen=True, kw_only=True)
class TailnetState:
    state: str  # one of the five above
    why: str  # what is wrong, naming the TailscaleTailnet; "" when connected
    last_connected: datetime.datetime | None = None
    reason: str = ""  # Disconnected: the check's reason (AuthenticationFailed, ...)


def _problems(snapshot: cluster.TailscaleTailnetSnapshot) -> list[str]:
    checked = loading.validate_object(
        {
            "apiVersion": tailscaletailnet.API_VERSION,
            "kind": tailscaletailnet.KIND,
            "metadata": {"name": snapshot.meta.name},
            "spec": snapshot.spec,
        }
    )
    return [str(p) for p in checked.problems]


def state_of(
    name: str, *, snapshot: cluster.TailscaleTailnetSnapshot | None, checks: Checks
) -> TailnetState:
    """The state of TailscaleTailnet `name`, given its snapshot (None: it does not exist)."""
    if snapshot is None or snapshot.deleted:
        return TailnetState(state=NOT_FOUND, why=f"TailscaleTailnet {name} not found")
    problems = _problems(snapshot)
    if problems:
        return TailnetState(state=INVALID, why=f"TailscaleTailnet {name}: {'; '.join(problems)}")
    check = checks.get(name)
    last = check.last_connected if check is not None else None
    if check is None or (check.uid, check.generation) != (
        snapshot.meta.uid,
        snapshot.meta.generation,
    ):
        why = f"TailscaleTailnet {name}: its control API is not checked yet"
        return TailnetState(state=PENDING, why=why, last_connected=last)
    if check.connected:
        return TailnetState(state=CONNECTED, why="", last_connected=last)
    why = f"TailscaleTailnet {name}: {check.reason}: {check.message}".rstrip(": ")
    return TailnetState(state=DISCONNECTED, why=why, last_connected=last, reason=check.reason)


def _ready(snapshot: cluster.TailscaleTailnetSnapshot, state: TailnetState) -> common.Condition:
    generation = snapshot.meta.generation
    spec = snapshot.spec
    if state.state == CONNECTED:
        api = spec.get("apiURL") or "https://api.tailscale.com"
        return common.Condition(
            type=conditions.Type.READY,
            status="True",
            reason=conditions.Reason.CONNECTED,
            message=f"the control API at {api} accepts the credentials of Secret "
            f"{spec.get('oauthSecretName', '?')}",
            observed_generation=generation,
        )
    status: Literal["False", "Unknown"] = "False"
    if state.state == INVALID:
        reason = str(conditions.Reason.INVALID_SPEC)
    elif state.state == PENDING:
        status, reason = "Unknown", str(conditions.Reason.PENDING)
    else:
        reason = state.reason or str(conditions.Reason.DISCONNECTED)
    return common.Condition(
        type=conditions.Type.READY,
        status=status,
        reason=reason,
        message=state.why,
        observed_generation=generation,
    )


def status_of(
    snapshot: cluster.TailscaleTailnetSnapshot, *, checks: Checks
) -> tailscaletailnet.TailscaleTailnetStatus:
    state = state_of(snapshot.meta.name, snapshot=snapshot, checks=checks)
    tailnet = snapshot.spec.get("tailnet")
    return tailscaletailnet.TailscaleTailnetStatus(
        conditions=[_ready(snapshot, state)],
        tailnet_info=tailscaletailnet.TailnetInfo(name=tailnet)
        if isinstance(tailnet, str)
        else None,
        last_connected=domain.rfc3339(state.last_connected),
        observed_generation=snapshot.meta.generation,
    )


def _reference(snapshot: cluster.TailscaleTailnetSnapshot) -> dict[str, Any]:
    return {
        "apiVersion": tailscaletailnet.API_VERSION,
        "kind": tailscaletailnet.KIND,
        "metadata": {"name": snapshot.meta.name},
    }


def _summary(
    snapshot: cluster.TailscaleTailnetSnapshot, st: tailscaletailnet.TailscaleTailnetStatus
) -> status_events.StatusSummary:
    return status_events.StatusSummary(
        kind=str(subjects.Kind.TAILSCALETAILNET),
        namespace=None,
        name=snapshot.meta.name,
        generation=snapshot.meta.generation,
        observed_generation=st.observed_generation,
        ready=all(c.status == "True" for c in st.conditions),
        conditions=domain.bus_conditions(st.conditions),
        details={
            "backend": snapshot.spec.get("backend", "tailscale"),
            "lastConnected": st.last_connected,
        },
    )


def render_tailnets(source: domain.RenderInput, /) -> domain.Rendered:
    """The status of every TailscaleTailnet in the view, in name order."""
    tailnets = sorted(
        (
            item
            for item in source.view.of_kind(subjects.Kind.TAILSCALETAILNET)
            if isinstance(item, cluster.TailscaleTailnetSnapshot) and not item.deleted
        ),
        key=lambda t: t.meta.name,
    )
    statuses = []
    summaries = []
    for snapshot in tailnets:
        st = status_of(snapshot, checks=source.tailnet_checks)
        statuses.append((_reference(snapshot), st.dump()))
        summaries.append((subjects.status(snapshot.ref), _summary(snapshot, st)))
    return domain.Rendered(statuses=tuple(statuses), summaries=tuple(summaries))
