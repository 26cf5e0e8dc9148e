"""The TailscaleGateway status of the seed reference, from what rendering found.

Conditions `Ready` (the gateway is configured, or why not), `TailnetsReady` (every
referenced TailscaleTailnet exists and is valid) and `Degraded` (priority conflicts, refused
routes, settings not enforced: each named by field); per-tailnet status, `serviceInfo` and
`gatewayInfo`. Pure, no I/O: the caller writes it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from tailwire.services.renderer import domain, tailnets
from tailwire.services.renderer.ingress import findings, inputs, routes, stack
from tailwire.shared.resources import (
    common,
    conditions,
    tailscalegateway,
)

_MAX_LISTED = 8


def tailnet_states(
    gateway: tailscalegateway.TailscaleGateway,
    *,
    snapshots: inputs.Snapshots,
    settings: inputs.Settings,
) -> dict[str, tailnets.TailnetState]:
    """tailnet config name -> where its TailscaleTailnet stands."""
    return {
        t.name: tailnets.state_of(
            t.tailscale_tailnet_ref.name,
            snapshot=snapshots.tailnet(t.tailscale_tailnet_ref.name),
            checks=settings.tailnet_checks,
        )
        for t in gateway.spec.tailnets
    }


def _listed(items: Sequence[object]) -> str:
    shown = "; ".join(str(item) for item in items[:_MAX_LISTED])
    more = len(items) - _MAX_LISTED
    return shown + (f"; and {more} more" if more > 0 else "")


# The worst state among a gateway's tailnets decides TailnetsReady's reason.
_TAILNET_REASONS = (
    (tailnets.NOT_FOUND, conditions.Reason.TAILNET_NOT_FOUND),
    (tailnets.INVALID, conditions.Reason.TAILNET_INVALID),
    (tailnets.DISCONNECTED, conditions.Reason.TAILNET_DISCONNECTED),
)


def _tailnets_condition(
    states: Mapping[str, tailnets.TailnetState],
    *,
    generation: int | None,
    settings: inputs.Settings,
) -> common.Condition:
    problems = [s.why for s in states.values() if s.state != tailnets.CONNECTED]
    found = {s.state for s in states.values()}
    worst = next((reason for state, reason in _TAILNET_REASONS if state in found), None)
    status: bool | None
    if worst is not None:
        status, reason, message = False, worst, _listed(problems)
    elif problems:  # only tailnets not checked yet
        status, reason, message = None, conditions.Reason.PENDING, _listed(problems)
    else:
        status = True
        reason = conditions.Reason.ALL_TAILNETS_CONNECTED
        message = f"all {len(states)} tailnet(s) connected"
    return _condition(
        type_=conditions.Type.TAILNETS_READY,
        status=status,
        reason=reason,
        message=message,
        generation=generation,
        settings=settings,
    )


def _condition(
    *,
    type_: conditions.Type,
    status: bool | None,
    reason: conditions.Reason,
    message: str,
    generation: int | None,
    settings: inputs.Settings,
) -> common.Condition:
    return common.Condition(
        type=type_,
        status="Unknown" if status is None else "True" if status else "False",
        reason=reason,
        message=message,
        observed_generation=generation,
        last_transition_time=settings.now,
    )


def invalid_status(
    *,
    generation: int | None,
    problems: Sequence[object],
    settings: inputs.Settings,
) -> tailscalegateway.TailscaleGatewayStatus:
    """Nothing is applied for an invalid spec; Ready=False names every field."""
    return tailscalegateway.TailscaleGatewayStatus(
        conditions=[
            _condition(
                type_=conditions.Type.READY,
                status=False,
                reason=conditions.Reason.INVALID_SPEC,
                message=_listed(problems),
                generation=generation,
                settings=settings,
            )
        ],
        observed_generation=generation,
    )


def build_status(
    gateway: tailscalegateway.TailscaleGateway,
    *,
    built: stack.Stack,
    generated: routes.Routes,
    notes: Sequence[findings.Finding],
    snapshots: inputs.Snapshots,
    settings: inputs.Settings,
) -> tailscalegateway.TailscaleGatewayStatus:
    target = built.target
    states = tailnet_states(gateway, snapshots=snapshots, settings=settings)
    by_category: dict[findings.Category, list[findings.Finding]] = {}
    for note in notes:
        by_category.setdefault(note.category, []).append(note)

    route_count = len(generated.winners)
    served = {c.service_key for c in generated.winners}
    selected = {key for keys in generated.selected.values() for key in keys}
    missing = by_category.get(findings.Category.MISSING, [])
    if missing:
        ready = _condition(
            type_=conditions.Type.READY,
            status=False,
            reason=conditions.Reason.PENDING,
            message=_listed(missing),
            generation=gateway.metadata.generation,
            settings=settings,
        )
    elif target.managed and not target.exists:
        ready = _condition(
            type_=conditions.Type.READY,
            status=False,
            reason=conditions.Reason.PENDING,
            message=f"Gateway {target.namespace}/{target.name} (managed by tailwire) is rendered; "
            f"waiting for it to exist and be Programmed; {route_count} route(s) for "
            f"{len(served)} Service(s)",
            generation=gateway.metadata.generation,
            settings=settings,
        )
    elif target.programmed is False:
        ready = _condition(
            type_=conditions.Type.READY,
            status=False,
            reason=conditions.Reason.PENDING,
            message=f"Gateway {target.namespace}/{target.name} is not Programmed (its controller "
            f"has not accepted it yet); {route_count} route(s) rendered",
            generation=gateway.metadata.generation,
            settings=settings,
        )
    else:
        how = "managed by tailwire" if target.managed else "referenced"
        message = (
            f"Gateway {target.namespace}/{target.name} ({how}) is configured: "
            f"{route_count} route(s) for {len(served)} Service(s)"
        )
        referenced = by_category.get(findings.Category.REFERENCED, [])
        if referenced:
            message += "; " + _listed(referenced)
        ready = _condition(
            type_=conditions.Type.READY,
            status=True,
            reason=conditions.Reason.GATEWAY_CONFIGURED,
            message=message,
            generation=gateway.metadata.generation,
            settings=settings,
        )
    tailnets_ready = _tailnets_condition(
        states, generation=gateway.metadata.generation, settings=settings
    )
    degrading = [
        *by_category.get(findings.Category.NOT_PERMITTED, []),
        *by_category.get(findings.Category.CONFLICT, []),
        *by_category.get(findings.Category.REFUSED, []),
        *by_category.get(findings.Category.NOT_ENFORCED, []),
    ]
    if findings.Category.NOT_PERMITTED in by_category:
        reason = conditions.Reason.NOT_PERMITTED
    elif findings.Category.CONFLICT in by_category:
        reason = conditions.Reason.PRIORITY_CONFLICT
    elif findings.Category.REFUSED in by_category:
        reason = conditions.Reason.ROUTES_REFUSED
    elif degrading:
        reason = conditions.Reason.NOT_ENFORCED
    else:
        reason = conditions.Reason.AS_EXPECTED
    degraded = _condition(
        type_=conditions.Type.DEGRADED,
        status=bool(degrading),
        reason=reason,
        message=_listed(degrading) if degrading else "every setting is enforced",
        generation=gateway.metadata.generation,
        settings=settings,
    )
    per_tailnet = []
    for index, tailnet in enumerate(gateway.spec.tailnets):
        state = states[tailnet.name]
        per_tailnet.append(
            tailscalegateway.TailnetStatus(
                name=tailnet.name,
                status=state.state,
                last_connected=domain.rfc3339(state.last_connected),
                services_count=len(generated.selected.get(tailnet.name, ())),
                routes_generated=sum(1 for c in generated.winners if c.tailnet_index == index),
            )
        )
    return tailscalegateway.TailscaleGatewayStatus(
        conditions=[ready, tailnets_ready, degraded],
        tailnets=per_tailnet,
        service_info=tailscalegateway.ServiceInfo(
            total_services=len(selected),
            healthy_services=len(selected & served),
            unhealthy_services=len(selected - served),
        ),
        gateway_info=tailscalegateway.GatewayInfo(
            listener_count=target.listener_count,
            route_count=route_count,
            last_reconciled=domain.rfc3339(settings.now),
        ),
        observed_generation=gateway.metadata.generation,
    )
