"""An EgressGroup's status from what the renderer computed and what came back.

Key events (from the keyminter) and node acks (from the nodeagents) close the loop: Ready
means the key is in its Secret and every gateway node applied the plan that carries the
group. Conditions keep their lastTransitionTime while their status stays the same.
Must not: do I/O or read a clock (the caller passes `now`).
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Mapping, Sequence
from typing import Any

from tailwire.services.renderer import domain, transitions
from tailwire.services.renderer.egress import configs, rendering
from tailwire.shared.events import base, keys, nodes, status
from tailwire.shared.resources import conditions, egressgroup

KeyEvent = keys.KeyReady | keys.KeyFailed | keys.KeyRevoked
_REFUSED_CREDENTIALS = {"CredentialsRefused", "Unauthorized", "Forbidden"}


@dataclasses.dataclass(frozen=True, kw_only=True)
class GroupStatus:
    status: egressgroup.EgressGroupStatus
    conditions: tuple[base.Condition, ...]

    @property
    def ready(self) -> bool:
        return any(c.type == conditions.Type.READY and c.status == "True" for c in self.conditions)

    def document(self) -> dict[str, Any]:
        """The `status` of the resource, as a merge patch or apply body carries it."""
        return self.status.dump()


def _condition(
    type_: conditions.Type,
    value: str,
    reason: conditions.Reason,
    message: str,
    *,
    generation: int | None,
    previous: Mapping[str, base.Condition],
    now: datetime.datetime,
) -> base.Condition:
    return base.Condition(
        type=type_,
        status=value,  # type: ignore[arg-type]
        reason=reason,
        message=message,
        observed_generation=generation,
        last_transition_time=transitions.transition_time(previous.get(type_), value=value, now=now),
    )


def _key_condition(group_name: str, key: KeyEvent | None) -> tuple[str, conditions.Reason, str]:
    if isinstance(key, keys.KeyReady):
        return (
            "True",
            conditions.Reason.KEY_ISSUED,
            f"key {key.key_id} in Secret {key.secret_namespace}/{key.secret_name}, "
            f"expires {key.expires_at.isoformat()}",
        )
    if isinstance(key, keys.KeyFailed):
        reason = (
            conditions.Reason.CREDENTIALS_REFUSED
            if key.reason in _REFUSED_CREDENTIALS
            else conditions.Reason.KEY_FAILED
        )
        return "False", reason, f"{key.reason}: {key.message}"
    return (
        "False",
        conditions.Reason.PENDING,
        f"waiting for the keyminter to mint {group_name}'s key",
    )


def _node_state(
    *,
    result: rendering.GroupResult,
    plan_generations: Mapping[str, int],
    acks: Mapping[str, nodes.NodeAck],
) -> tuple[list[str], list[str]]:
    """(nodes still applying, errors reported by nodes) for the group."""
    waiting: list[str] = []
    failures: list[str] = []
    member_uids = {p.meta.uid for p in result.members}
    for node in result.gateway_nodes:
        ack = acks.get(node)
        if ack is None or ack.generation < plan_generations.get(node, 0):
            waiting.append(node)
            continue
        for gw in ack.gateways:
            if gw.group == result.group.name and not gw.ok:
                failures.append(f"{node}: gateway: {gw.error or 'failed'}")
        for pod in ack.pods:
            if pod.pod_uid in member_uids and not pod.ok:
                failures.append(f"{node}: pod {pod.pod_uid}: {pod.error or 'failed'}")
    return waiting, failures


_EXIT_REASONS = {
    "ExitNodeNotFound": conditions.Reason.EXIT_NODE_NOT_FOUND,
    "ExitNodeAmbiguous": conditions.Reason.EXIT_NODE_AMBIGUOUS,
    "ExitNodeNotOffered": conditions.Reason.EXIT_NODE_NOT_OFFERED,
}


def _exit_node_state(
    *, result: rendering.GroupResult, acks: Mapping[str, nodes.NodeAck]
) -> tuple[str | None, tuple[conditions.Reason, str] | None]:
    """(the exit node the gateways resolved, the first problem a gateway reported).

    A gateway that is not running yet has nothing to say (its node is still waiting)."""
    resolved: str | None = None
    for node in result.gateway_nodes:
        ack = acks.get(node)
        for gw in ack.gateways if ack is not None else ():
            if gw.group != result.group.name:
                continue
            reason = _EXIT_REASONS.get(gw.exit_node_reason or "")
            if reason is not None:
                message = f"{node}: {gw.exit_node_message}"
                if gw.exit_node_reason in rendering.UNUSABLE_EXIT_NODE:
                    message += "; its members use their own default route until it resolves"
                return gw.exit_node, (reason, message)
            resolved = resolved or gw.exit_node
    return resolved, None


def group_status(
    *,
    result: rendering.GroupResult,
    key: KeyEvent | None,
    plan_generations: Mapping[str, int],
    acks: Mapping[str, nodes.NodeAck],
    previous: Sequence[base.Condition] = (),
    now: datetime.datetime,
) -> GroupStatus:
    group = result.group
    gen = group.generation
    before = {c.type: c for c in previous}

    def cond(t: conditions.Type, value: str, reason: conditions.Reason, msg: str) -> base.Condition:
        return _condition(t, value, reason, msg, generation=gen, previous=before, now=now)

    conds: tuple[base.Condition, ...]
    if not group.valid:
        conds = (
            cond(
                conditions.Type.READY,
                "False",
                conditions.Reason.INVALID_SPEC,
                group.problem_message(),
            ),
            cond(
                conditions.Type.KEY_READY,
                "Unknown",
                conditions.Reason.INVALID_SPEC,
                "no key is requested for an invalid spec",
            ),
            cond(conditions.Type.DEGRADED, "False", conditions.Reason.AS_EXPECTED, ""),
        )
        return GroupStatus(
            status=egressgroup.EgressGroupStatus(
                conditions=[domain.resource_condition(c) for c in conds], observed_generation=gen
            ),
            conditions=conds,
        )
    key_value, key_reason, key_message = _key_condition(group.name, key)
    waiting, failures = _node_state(result=result, plan_generations=plan_generations, acks=acks)
    wants_exit = group.spec is not None and group.spec.exit_node is not None
    resolved_exit, exit_problem = (
        _exit_node_state(result=result, acks=acks) if wants_exit else (None, None)
    )
    if group.deleting:
        ready = cond(
            conditions.Type.READY,
            "False",
            conditions.Reason.DELETING,
            "waiting for key revocation and node cleanup",
        )
    elif key_value != "True":
        ready = cond(conditions.Type.READY, "False", conditions.Reason.WAITING_FOR_KEY, key_message)
    elif waiting:
        ready = cond(
            conditions.Type.READY,
            "False",
            conditions.Reason.WAITING_FOR_NODES,
            "waiting for nodes to apply the plan: " + ", ".join(waiting),
        )
    elif exit_problem is not None:
        ready = cond(conditions.Type.READY, "False", *exit_problem)
    else:
        members, gw_nodes = len(result.members), len(result.gateway_nodes)
        message = f"{members} member pod(s) through gateways on {gw_nodes} node(s)"
        if result.unwired:
            message += "; not wired (no gateway on their node): " + ", ".join(result.unwired[:10])
        if group.spec is not None and group.spec.replicas != 1:
            # Accepted for the seed's manifests; tailwire's gateways are per node, not a pool.
            message += (
                f"; spec.replicas {group.spec.replicas} has no effect: one gateway runs on "
                "each node that hosts members"
            )
        ready = cond(conditions.Type.READY, "True", conditions.Reason.RECONCILED, message)
    degraded = _degraded(result=result, failures=failures)
    spec = group.spec
    assert spec is not None
    conds = (
        ready,
        cond(conditions.Type.KEY_READY, key_value, key_reason, key_message),
        cond(conditions.Type.DEGRADED, *degraded),
        cond(conditions.Type.SCOPED, *_scoped(spec)),
    )
    return GroupStatus(
        status=egressgroup.EgressGroupStatus(
            conditions=[domain.resource_condition(c) for c in conds],
            matched_pods=len(result.members),
            gateway_nodes=list(result.gateway_nodes),
            gateway_hostnames=[configs.hostname_for(group, node=n) for n in result.gateway_nodes],
            # What the gateways resolved (`name (ip, id ...)`), never the input repeated.
            resolved_exit_node=resolved_exit,
            observed_generation=gen,
        ),
        conditions=conds,
    )


def _scoped(spec: egressgroup.EgressGroupSpec) -> tuple[str, conditions.Reason, str]:
    """Whether members are limited to selected namespaces: without a namespaceSelector any
    namespace's pod that matches podSelector joins (who may label a pod may use the group)."""
    if spec.selector.namespace_selector is not None:
        return "True", conditions.Reason.NAMESPACE_SELECTOR, "members only from selected namespaces"
    return (
        "False",
        conditions.Reason.ALL_NAMESPACES,
        "spec.selector.namespaceSelector is unset: pods of every namespace that match "
        "spec.selector.podSelector join this group; set it on a multi-tenant cluster",
    )


def _degraded(
    *, result: rendering.GroupResult, failures: list[str]
) -> tuple[str, conditions.Reason, str]:
    spec = result.group.spec
    assert spec is not None
    refused = result.decision.refused if result.decision else ()
    if refused:
        parts = []
        for item in refused:
            index = spec.routes.index(item.route) if item.route in spec.routes else None
            where = f"spec.routes[{index}]" if index is not None else "spec.routes"
            parts.append(f"{where}: {item}")
        return "True", conditions.Reason.ROUTES_REFUSED, "; ".join(parts)
    if failures:
        return "True", conditions.Reason.NODE_ERRORS, "; ".join(failures[:10])
    if result.conflicts:
        shown = ", ".join(f"{pod} (taken by {owner})" for pod, owner in result.conflicts[:10])
        return (
            "True",
            conditions.Reason.SELECTOR_CONFLICT,
            f"{len(result.conflicts)} selected pod(s) belong to another group: {shown}",
        )
    without = [
        f"{p.meta.namespace}/{p.meta.name}" for p in result.members if not p.resolves_magic_dns
    ]
    if spec.dns.magic_dns and without:
        return (
            "True",
            conditions.Reason.MEMBER_DNS_NOT_CONFIGURED,
            f"{len(without)} member(s) cannot resolve tailnet names: {', '.join(without[:10])}; "
            "give them dnsPolicy: None with nameserver 100.100.100.100 and the cluster's search "
            "domains (docs/operations.md)",
        )
    return "False", conditions.Reason.AS_EXPECTED, ""


def summary(*, result: rendering.GroupResult, group_status: GroupStatus) -> status.StatusSummary:
    """The status summary on `tailwire.v1.status.egressgroup._.<name>`."""
    st = group_status.status
    return status.StatusSummary(
        kind="egressgroup",
        name=result.group.name,
        generation=result.group.generation,
        observed_generation=st.observed_generation,
        ready=group_status.ready,
        conditions=group_status.conditions,
        details={
            "matchedPods": st.matched_pods,
            "gatewayNodes": st.gateway_nodes,
            "gatewayHostnames": st.gateway_hostnames,
            "resolvedExitNode": st.resolved_exit_node,
        },
    )
