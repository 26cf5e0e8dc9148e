"""The group's status names the exit node its gateways resolved, or why none (issue 13 proof
4, issue 14 item 2): `resolvedExitNode` is what the gateways found, never the input repeated."""

from __future__ import annotations

import datetime

from tailwire.services.renderer import view
from tailwire.services.renderer.egress import rendering, statuses
from tailwire.shared import ids
from tailwire.shared.events import keys, nodes
from tests.renderer import helpers

NOW = datetime.datetime(2026, 12, 2, tzinfo=datetime.UTC)
SPEC = {**helpers.PEERS_SPEC, "exitNode": {"nodeID": "exit-fra1.your-org.ts.net"}}


def status_with(result: nodes.GatewayResult) -> statuses.GroupStatus:
    v = view.ClusterView()
    for obj in (helpers.node("node-a"), helpers.group("peers", SPEC),
                helpers.pod("api-0", node_name="node-a")):  # fmt: skip
        v.apply(obj)
    rendered = rendering.render_egress(view=v, opts=helpers.OPTS)
    group = rendered.groups["peers"]
    key = keys.KeyReady(
        owner=rendering.owner_ref(group.group), tailnet="-", secret_name="s",
        secret_namespace="tailwire-system", key_id="k1", tags=("tag:k8s",),
        expires_at=NOW + datetime.timedelta(days=90),
    )  # fmt: skip
    ack = nodes.NodeAck(node=ids.NodeName("node-a"), generation=1, gateways=(result,))
    return statuses.group_status(
        result=group, key=key, plan_generations={"node-a": 1}, acks={"node-a": ack}, now=NOW
    )


def test_the_resolved_exit_node_is_what_the_gateway_found() -> None:
    st = status_with(
        nodes.GatewayResult(
            group=ids.GroupName("peers"), ok=True,
            exit_node="exit-fra1.your-org.ts.net (100.64.0.7, id 7)",
        )
    )  # fmt: skip
    assert st.status.resolved_exit_node == "exit-fra1.your-org.ts.net (100.64.0.7, id 7)"
    assert st.ready


def test_an_exit_node_that_names_no_device_is_not_ready_and_says_why() -> None:
    st = status_with(
        nodes.GatewayResult(
            group=ids.GroupName("peers"), ok=True, exit_node_reason="ExitNodeNotFound",
            exit_node_message="exit node 'exit-fra1.your-org.ts.net' is not a device this "
            "gateway sees on its tailnet",
        )
    )  # fmt: skip
    ready = {c.type: c for c in st.conditions}["Ready"]
    assert (ready.status, ready.reason) == ("False", "ExitNodeNotFound")
    assert ready.message.startswith("node-a: exit node 'exit-fra1.your-org.ts.net'")
    assert ready.message.endswith("its members use their own default route until it resolves")
    assert st.status.resolved_exit_node is None


def test_before_any_gateway_speaks_nothing_is_claimed() -> None:
    st = status_with(nodes.GatewayResult(group=ids.GroupName("peers"), ok=True))
    assert st.status.resolved_exit_node is None
