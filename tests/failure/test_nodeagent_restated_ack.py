"""Found by the kill -9 burst test: after a gateway's config reload the nodeagent re-states
its last ack (same generation, no netlink writes), but it used to copy each pod's `writes`
from the original apply, so every reload looked like the pods were stitched again."""

from __future__ import annotations

from pathlib import Path

from tailwire.services.nodeagent import handlers, reconciling
from tailwire.shared import ids
from tailwire.shared.events import gateways, nodes


async def test_a_restated_ack_reports_no_writes_for_any_pod(tmp_path: Path) -> None:
    agent = reconciling.Agent(
        options=reconciling.Options(node="node-a", gateway_state_root=str(tmp_path), dry_run=True)
    )
    wiring = handlers.Wiring(agent=agent)  # no broker: nothing is published
    body = {"Version": "alpha0"}
    config = gateways.GatewayConfig(
        group=ids.GroupName("g"),
        tailnet="t",
        generation=2,
        config=body,
        hash=gateways.config_hash(body),
    )
    agent.last_ack = nodes.NodeAck(
        node=ids.NodeName("node-a"),
        generation=5,
        netlink_writes=9,
        pods=(nodes.PodResult(pod_uid=ids.PodUID("u1"), ok=True, writes=9),),
        gateways=(nodes.GatewayResult(group=ids.GroupName("g"), ok=True, config_hash="old"),),
    )
    try:
        await wiring.restate_ack(config)
    finally:
        await agent.close()
    restated = agent.last_ack
    assert restated is not None
    assert restated.generation == 5
    assert restated.netlink_writes == 0
    assert [(p.pod_uid, p.ok, p.writes) for p in restated.pods] == [("u1", True, 0)]
    assert restated.gateways[0].config_hash == config.hash
