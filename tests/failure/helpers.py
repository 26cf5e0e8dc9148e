"""Helpers of the failure tests: a system per test, egress groups, bursts of pod changes,
and the checks that the datapath converged with every pod stitched exactly once.

"Exactly once" is read from two independent sources: the nodeagent's acks (captured from
the bus for the whole test: per pod, one ack at most reports it stitched with writes, every
later one 0 writes) and, as root, the kernel (one `ts0` in each member netns, one gateway-side
link per member, none for a deleted pod, the same ifindex from the first check to the last).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

from tailwire.services.nodeagent.domain import facts
from tailwire.shared.events import nodes
from tailwire.testing import netns, system

NODE = "node-a"
GROUP_LABEL = "failure.tailwire.dev/group"


@contextlib.asynccontextmanager
async def whole_system(**options: Any) -> AsyncIterator[system.System]:
    defaults: dict[str, Any] = {"nodes": (NODE,)}
    async with system.running(system.Options(**(defaults | options))) as running:
        yield running


def egress_group(s: system.System, name: str) -> None:
    s.apply(
        {
            "apiVersion": "tailscale.rajsingh.info/v1alpha1",
            "kind": "EgressGroup",
            "metadata": {"name": name},
            "spec": {"selector": {"podSelector": {"matchLabels": {GROUP_LABEL: name}}}},
        }
    )


async def member(s: system.System, *, group: str, name: str) -> system.MemberPod:
    return await s.create_member_pod(namespace=group, name=name, labels_={GROUP_LABEL: group})


def datapath() -> bool:
    return netns.unavailable_reason() is None


async def converged(
    s: system.System, *, live: Mapping[str, system.MemberPod], gone: set[str], within: float
) -> nodes.NodeAck:
    """Until the node's plan holds exactly the live pods and its last ack has them all ok
    (as root: stitched) for that plan's generation."""

    async def probe() -> nodes.NodeAck | None:
        plan = await s.last_plan(NODE)
        ack = await s.last_ack(NODE)
        if plan is None or ack is None:
            return None
        if {m.pod_uid for m in plan.members} != set(live) or ack.generation != plan.generation:
            return None
        results: dict[str, nodes.PodResult] = {p.pod_uid: p for p in ack.pods}
        if gone & set(results):
            return None
        wanted_ok = datapath()
        if not all(uid in results and results[uid].ok == wanted_ok for uid in live):
            return None
        return ack

    ack: nodes.NodeAck = await system.eventually(
        probe, within=within, interval=0.2, what=f"{len(live)} pods converged on {NODE}"
    )
    return ack


def stitch_counts(seen: system.Capture) -> dict[str, int]:
    """Per pod: how many acks report it stitched (ok) with netlink writes."""
    counts: dict[str, int] = {}
    for message in seen.on("tailwire.v1.node."):
        if not message.subject.endswith(".ack"):
            continue
        ack = nodes.NodeAck.model_validate_json(message.data)
        for result in ack.pods:
            if result.ok and result.writes > 0:
                counts[result.pod_uid] = counts.get(result.pod_uid, 0) + 1
    return counts


def history(seen: system.Capture, uid: str) -> list[str]:
    """What the acks and plans said about one pod, in order (for failure messages)."""
    lines = []
    for message in seen.on("tailwire.v1.node."):
        if message.subject.endswith(".ack"):
            ack = nodes.NodeAck.model_validate_json(message.data)
            for r in ack.pods:
                if r.pod_uid == uid:
                    lines.append(f"ack g{ack.generation}: ok={r.ok} writes={r.writes} {r.error}")
        elif message.subject.endswith(".plan"):
            plan = nodes.NodePlan.model_validate_json(message.data)
            for m in plan.members:
                if m.pod_uid == uid:
                    lines.append(f"plan g{plan.generation}: {m.link.member_v4} {m.routes}")
    return lines


def _missing_link_report(
    s: system.System, plan: nodes.NodePlan, pod: system.MemberPod, sides: dict[str, list[int]]
) -> str:
    """Everything that says where a member's gateway-side link went, for the failure."""
    lines = [f"{pod.name} ({pod.uid}): gateway links {sides.get(pod.uid)}"]
    lines += [f"plan g{plan.generation} gateway {g.group}: netns {g.netns}" for g in plan.gateways]
    for gateway in plan.gateways:
        if gateway.netns is not None:
            names = [f"{link['ifname']}={link.get('ifalias')}" for link in _links(s, gateway.netns)]
            lines.append(f"links in {gateway.netns}: {names}")
    if pod.netns is not None:
        names = [f"{link['ifname']}={link.get('ifalias')}" for link in _links(s, pod.netns)]
        lines.append(f"links in the pod's {pod.netns}: {names}")
    agent = s.processes.get(f"nodeagent/{NODE}")
    if agent is not None:
        lines.append("nodeagent log:\n" + agent.log_tail(80))
    return "\n".join(lines)


def _links(s: system.System, ns: str) -> list[dict[str, Any]]:
    assert s.netns is not None
    out = s.netns.run(["ip", "-j", "-d", "link", "show"], netns=ns).stdout
    links: list[dict[str, Any]] = json.loads(out or "[]")
    return links


def member_link(s: system.System, pod: system.MemberPod) -> int:
    """The ifindex of the pod's one `ts0` (asserts there is exactly one)."""
    assert pod.netns is not None
    found = [link for link in _links(s, pod.netns) if link["ifname"] == "ts0"]
    assert len(found) == 1, f"{pod.name}: {len(found)} ts0 links"
    return int(found[0]["ifindex"])


def gateway_links(s: system.System, plan: nodes.NodePlan) -> dict[str, list[int]]:
    """Pod UID -> ifindexes of the gateway-side links tailwire made for it, in all gateways."""
    by_pod: dict[str, list[int]] = {}
    for gateway in plan.gateways:
        if gateway.netns is None:
            continue
        for link in _links(s, gateway.netns):
            parsed = facts.parse_alias(link.get("ifalias"))
            if parsed is not None:
                by_pod.setdefault(parsed[0], []).append(int(link["ifindex"]))
    return by_pod


async def check_kernel(
    s: system.System, *, live: Mapping[str, system.MemberPod], gone: set[str]
) -> dict[str, int]:
    """As root: one ts0 per live member, one gateway link per live member, none for the
    deleted ones. Returns pod UID -> the member-side ifindex."""
    plan = await s.last_plan(NODE)
    assert plan is not None
    sides = gateway_links(s, plan)
    for uid in live:
        assert len(sides.get(uid, [])) == 1, _missing_link_report(s, plan, live[uid], sides)
    assert not gone & set(sides), f"links left for deleted pods: {gone & set(sides)}"
    return {uid: member_link(s, pod) for uid, pod in live.items()}
