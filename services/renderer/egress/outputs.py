"""What to publish and write after a computation, given what is already out there.

Compares the computed state with what the renderer last published (read back from the bus
on start, so a restart republishes nothing unchanged): a node plan is published only when
the node's desired state changed, with the next generation; a gateway config, key request
or status summary only when its content changed. Decides finalizers: added to every live
valid group, removed from a deleted group once the keyminter revoked its key and every node
that acknowledged anything has applied a plan without the group.
Must not: do I/O or read a clock (the caller passes `now`).
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
from collections.abc import Mapping
from typing import Any

from tailwire.services.renderer.egress import rendering, statuses
from tailwire.shared import subjects
from tailwire.shared.events import base, gateways, keys, nodes, status
from tailwire.shared.k8s import labels
from tailwire.shared.resources import egressgroup


@dataclasses.dataclass(kw_only=True)
class Published:
    """The renderer's last word on each subject (mutable: updated as it publishes)."""

    plans: dict[str, nodes.NodePlan] = dataclasses.field(default_factory=dict)
    configs: dict[str, gateways.GatewayConfig] = dataclasses.field(default_factory=dict)
    key_requests: dict[str, keys.KeyRequest] = dataclasses.field(default_factory=dict)
    summaries: dict[str, status.StatusSummary] = dataclasses.field(default_factory=dict)

    def copy(self) -> Published:
        return Published(
            plans=dict(self.plans),
            configs=dict(self.configs),
            key_requests=dict(self.key_requests),
            summaries=dict(self.summaries),
        )

    def record(self, item: Outgoing) -> None:
        """Remember an item once it is on the bus (not before: a failed publish is retried)."""
        table: dict[str, Any] = getattr(self, item.table)
        table[item.key] = item.event


@dataclasses.dataclass(frozen=True, kw_only=True)
class Outgoing:
    subject: str
    event: base.Event
    msg_id: str
    table: str  # the Published field this item updates once published
    key: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class Decision:
    outgoing: tuple[Outgoing, ...]
    statuses: tuple[tuple[dict[str, Any], dict[str, Any]], ...]
    finalizers: tuple[tuple[dict[str, Any], tuple[str, ...]], ...]


def group_ref(name: str) -> dict[str, Any]:
    return {
        "apiVersion": egressgroup.API_VERSION,
        "kind": egressgroup.KIND,
        "metadata": {"name": name},
    }


def status_subject(name: str) -> str:
    """`tailwire.v1.status.egressgroup._.<name>`."""
    return subjects.status(
        subjects.ObjectRef(kind=subjects.Kind.EGRESSGROUP, namespace=None, name=name)
    )


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _cleanup_done(
    *,
    result: rendering.GroupResult,
    key: statuses.KeyEvent | None,
    published: Published,
    acks: Mapping[str, nodes.NodeAck],
) -> bool:
    name = result.group.name
    if not (isinstance(key, keys.KeyRevoked) and key.owner.uid == result.group.uid):
        return False
    for node, plan in published.plans.items():
        if any(g.group == name for g in plan.gateways) or any(
            m.group == name for m in plan.members
        ):
            return False
        ack = acks.get(node)
        if ack is not None and ack.generation < plan.generation:
            return False
    return True


def decide(
    *,
    result: rendering.EgressResult,
    published: Published,
    key_events: Mapping[str, statuses.KeyEvent],
    acks: Mapping[str, nodes.NodeAck],
    now: datetime.datetime,
) -> Decision:
    """What to publish, and what to write to the API; `published` is left untouched."""
    published = published.copy()
    out: list[Outgoing] = []
    for name, group_result in sorted(result.groups.items()):
        config = group_result.config
        if config is not None and published.configs.get(name) != config:
            out.append(
                Outgoing(
                    subject=subjects.gateway_config(name),
                    event=config,
                    msg_id=f"{name}:config:{config.hash[7:23]}:{config.generation}",
                    table="configs",
                    key=name,
                )
            )
            published.configs[name] = config
    for node, plan in sorted(result.plans.items()):
        before = published.plans.get(node)
        if before is not None and before.content_key() == plan.content_key():
            continue
        numbered = plan.model_copy(update={"generation": (before.generation if before else 0) + 1})
        out.append(
            Outgoing(
                subject=subjects.node_plan(node),
                event=numbered,
                msg_id=f"{node}:plan:{numbered.generation}:{_short_hash(plan.content_key())}",
                table="plans",
                key=node,
            )
        )
        published.plans[node] = numbered
    for name, request in sorted(result.key_requests.items()):
        if published.key_requests.get(name) != request:
            ref = subjects.ObjectRef(kind=subjects.Kind.EGRESSGROUP, namespace=None, name=name)
            body = request.model_dump_json()
            out.append(
                Outgoing(
                    subject=subjects.keys_request(ref),
                    event=request,
                    msg_id=f"{request.owner.uid}:keyrequest:{_short_hash(body)}",
                    table="key_requests",
                    key=name,
                )
            )
            published.key_requests[name] = request
    status_writes: list[tuple[dict[str, Any], dict[str, Any]]] = []
    finalizers: list[tuple[dict[str, Any], tuple[str, ...]]] = []
    plan_generations = {node: plan.generation for node, plan in published.plans.items()}
    for name, group_result in sorted(result.groups.items()):
        group = group_result.group
        key = key_events.get(name)
        if key is not None and key.owner.uid != group.uid:
            key = None  # an event about an earlier group of the same name
        subject = status_subject(name)
        previous = published.summaries.get(subject)
        group_status = statuses.group_status(
            result=group_result,
            key=key,
            plan_generations=plan_generations,
            acks=acks,
            previous=previous.conditions if previous else (),
            now=now,
        )
        summary = statuses.summary(result=group_result, group_status=group_status)
        if previous != summary:
            out.append(
                Outgoing(
                    subject=subject,
                    event=summary,
                    msg_id=f"{group.uid}:status:{_short_hash(summary.model_dump_json())}",
                    table="summaries",
                    key=subject,
                )
            )
            published.summaries[subject] = summary
        status_writes.append((group_ref(name), group_status.document()))
        has = labels.FINALIZER in group.finalizers
        if not group.deleting and group.valid and not has:
            finalizers.append((group_ref(name), (*group.finalizers, labels.FINALIZER)))
        elif (
            group.deleting
            and has
            and _cleanup_done(result=group_result, key=key, published=published, acks=acks)
        ):
            kept = tuple(f for f in group.finalizers if f != labels.FINALIZER)
            finalizers.append((group_ref(name), kept))
    return Decision(
        outgoing=tuple(out), statuses=tuple(status_writes), finalizers=tuple(finalizers)
    )
