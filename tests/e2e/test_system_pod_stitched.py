"""A pod created in the Kubernetes API ends stitched in its netns, acked by its node's agent
and counted in its group's status, with every service as its own process."""

from __future__ import annotations

from pathlib import Path

import pytest

from tailwire.testing import system
from tests.e2e import conftest

pytestmark = pytest.mark.asyncio(loop_scope="package")

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
MEMBER = {"tailgate.dev/egress": "true"}


async def test_pod_is_stitched_acked_and_counted(whole_system: system.System) -> None:
    s = whole_system
    s.create_namespace("payments")
    s.apply_file(EXAMPLES / "egressgroup-payments.yaml")
    pod = await s.create_member_pod(namespace="payments", name="api-0", labels_=MEMBER)

    ack = await s.wait_for_ack(node=pod.node, pod_uid=pod.uid, ok=conftest.stitched(), within=30)
    result = next(p for p in ack.pods if p.pod_uid == pod.uid)
    assert result.ok or conftest.stitched() is None, result.error
    status = await s.wait_for_group_status(
        "payments", lambda st: st.get("matchedPods") == 1, within=30
    )
    assert pod.node in status.get("gatewayNodes", [])

    plan = await s.last_plan(pod.node)
    assert plan is not None
    member = next(m for m in plan.members if m.pod_uid == pod.uid)
    assert member.netns == pod.netns
    gateway = next(g for g in plan.gateways if g.group == "payments")
    assert gateway.pod_uid is not None, "the launcher's kubelet made the gateway pod"

    reason = conftest.netns_skip_reason()
    if reason is not None:
        pytest.skip(reason)
    # A real ICMP echo from the pod's netns through its gateway to the simulated tailnet peer
    # (the peer only knows the gateway's tailnet address: replies come back via MASQUERADE).
    assert s.ping(pod, address=system.PEER_IPV4)
    assert s.ping(pod, address=system.PEER_IPV6)


async def test_second_pod_on_another_node_gets_its_own_gateway(
    whole_system: system.System,
) -> None:
    s = whole_system
    s.create_namespace("payments")
    s.apply_file(EXAMPLES / "egressgroup-payments.yaml")
    pod = await s.create_member_pod(
        namespace="payments", name="api-1", labels_=MEMBER, node=conftest.NODES[1]
    )
    ack = await s.wait_for_ack(node=pod.node, pod_uid=pod.uid, ok=conftest.stitched(), within=30)
    assert ack.node == conftest.NODES[1]
    status = await s.wait_for_group_status(
        "payments", lambda st: st.get("matchedPods") == 2, within=30
    )
    assert set(status.get("gatewayNodes", [])) == set(conftest.NODES)
    if conftest.netns_skip_reason() is None:
        # The member's ack can precede node-b's gateway: the launcher's kubelet starts the
        # gateway pod once the DaemonSet reaches node-b, and the agent wires it on the next
        # plan. Traffic must flow once it is up (CI once pinged a moment too early).
        await system.eventually(
            lambda: s.ping(pod), within=20, what="a ping through node-b's new gateway"
        )
