"""The egress computation on small views: gateway pods and netns, template stability,
exit-node toggles, refused routes and selector conflicts in status, gateway hostnames (the
cluster's name in them; the longer prefixes of other groups named in key requests, so a
revocation spares their devices)."""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

from tailwire.services.renderer import view
from tailwire.services.renderer.egress import options, rendering, statuses
from tailwire.shared import ids
from tailwire.shared.events import cluster, keys, nodes
from tailwire.shared.k8s import labels
from tests.renderer import helpers

OPTS = options.Options(cluster_cidrs=("10.244.0.0/16", "10.96.0.0/12"))
NOW = datetime.datetime(2026, 11, 22, tzinfo=datetime.UTC)
SUBNET = {**helpers.PEERS_SPEC, "mode": "subnet", "routes": ["10.0.0.0/8", "10.244.3.0/24"]}


def build(*objects: Any) -> view.ClusterView:
    v = view.ClusterView()
    for obj in objects:
        v.apply(obj)
    return v


def gateway_pod(group: str, node_name: str) -> cluster.PodSnapshot:
    return cluster.PodSnapshot(
        meta=cluster.Meta(
            uid=f"gw-{group}-{node_name}",
            namespace=OPTS.gateway_namespace,
            name=f"tailwire-gw-{group}-x1",
            labels={labels.EGRESS_GROUP: group},
            annotations={labels.NETNS: f"gw-{node_name}"},
        ),
        node_name=node_name,
        phase="Running",
    )


def with_netns(pod: cluster.PodSnapshot, netns: str) -> cluster.PodSnapshot:
    meta = pod.meta.model_copy(update={"annotations": {labels.NETNS: netns}})
    return pod.model_copy(update={"meta": meta})


def test_gateway_pod_and_named_netns_reach_the_plan() -> None:
    result = rendering.render_egress(
        view=build(
            helpers.node("node-a"),
            helpers.group("peers", helpers.PEERS_SPEC),
            with_netns(helpers.pod("api-0", node_name="node-a"), "member-0"),
            gateway_pod("peers", "node-a"),
        ),
        opts=OPTS,
    )
    plan = result.plans["node-a"]
    (gateway,) = plan.gateways
    assert (gateway.pod_name, gateway.netns) == ("tailwire-gw-peers-x1", "gw-node-a")
    assert gateway.hostname == "tailwire-peers-node-a"
    assert gateway.config_hash == result.groups["peers"].config.hash  # type: ignore[union-attr]
    (member,) = plan.members
    assert member.netns == "member-0"
    # The gateway pod itself is never a member, though it lives beside the members.
    assert [m.name for m in plan.members] == ["api-0"]


def test_daemonset_template_is_stable_across_membership_and_config_changes() -> None:
    def daemon_set(*objects: Any) -> dict[str, Any]:
        result = rendering.render_egress(view=build(*objects), opts=OPTS)
        return next(m for m in result.manifests if m["kind"] == "DaemonSet")

    small = daemon_set(helpers.group("peers", helpers.PEERS_SPEC), helpers.pod("a", node_name="n1"))
    changed = {**helpers.PEERS_SPEC, "acceptRoutes": False, "exitNode": {"nodeID": "exit-1"}}
    large = daemon_set(
        helpers.pod("z", node_name="n3"),
        helpers.group("peers", changed, generation=2),
        helpers.pod("b", node_name="n2"),
        helpers.pod("a", node_name="n1"),
    )
    assert large == small


def test_exit_node_toggle_reaches_the_member_plans_and_the_config() -> None:
    pod = helpers.pod("api-0", node_name="node-a")
    off = rendering.render_egress(
        view=build(helpers.group("peers", helpers.PEERS_SPEC), pod), opts=OPTS
    )
    exit_spec = {**helpers.PEERS_SPEC, "exitNode": {"nodeID": "exit-fra1", "allowLANAccess": True}}
    on = rendering.render_egress(
        view=build(helpers.group("peers", exit_spec, generation=2), pod), opts=OPTS
    )
    (before,) = off.plans["node-a"].members
    (after,) = on.plans["node-a"].members
    assert (before.exit_node, before.carve_outs) == (False, ())
    assert (after.exit_node, after.carve_outs) == (True, ("10.244.0.0/16", "10.96.0.0/12"))
    config = on.groups["peers"].config
    assert config is not None
    assert config.config["exitNode"] == "exit-fra1"
    assert config.config["allowLANWhileUsingExitNode"] is True
    assert off.plans["node-a"].gateways[0].config_hash != on.plans["node-a"].gateways[0].config_hash


def test_refused_route_and_selector_conflict_are_reported_in_status() -> None:
    result = rendering.render_egress(
        view=build(
            helpers.group("alpha", SUBNET),
            helpers.group("beta", helpers.PEERS_SPEC),
            helpers.pod("api-0", node_name="node-a"),
        ),
        opts=OPTS,
    )
    alpha = statuses.group_status(
        result=result.groups["alpha"], key=None, plan_generations={}, acks={}, now=NOW
    )
    beta = statuses.group_status(
        result=result.groups["beta"], key=None, plan_generations={}, acks={}, now=NOW
    )
    degraded = {c.type: c for c in alpha.conditions}["Degraded"]
    assert (degraded.status, degraded.reason) == ("True", "RoutesRefused")
    assert degraded.message.startswith(
        "spec.routes[1]: 10.244.3.0/24: lies inside the cluster CIDR 10.244.0.0/16"
    )
    assert result.groups["alpha"].decision is not None
    assert result.groups["alpha"].decision.routes[-1] == "10.0.0.0/8"
    conflict = {c.type: c for c in beta.conditions}["Degraded"]
    assert (conflict.status, conflict.reason) == ("True", "SelectorConflict")
    assert "payments/api-0 (taken by alpha)" in conflict.message
    ready = {c.type: c for c in alpha.conditions}["Ready"]
    assert (ready.status, ready.reason) == ("False", "WaitingForKey")
    assert alpha.status.matched_pods == 1
    assert beta.status.matched_pods == 0


def test_gateway_node_selector_places_gateways_and_reports_unwired_members() -> None:
    spec = {**helpers.PEERS_SPEC, "gateway": {"nodeSelector": {"egress": "yes"}}}
    labelled = helpers.node("node-b").model_copy(
        update={
            "meta": helpers.node("node-b").meta.model_copy(update={"labels": {"egress": "yes"}})
        }
    )
    result = rendering.render_egress(
        view=build(
            helpers.node("node-a"),
            labelled,
            helpers.group("peers", spec),
            helpers.pod("api-0", node_name="node-a"),
            helpers.pod("api-1", node_name="node-b"),
        ),
        opts=OPTS,
    )
    assert result.groups["peers"].gateway_nodes == ("node-b",)
    assert result.groups["peers"].unwired == ("payments/api-0",)
    assert result.plans["node-a"].members == ()
    assert [m.name for m in result.plans["node-b"].members] == ["api-1"]
    daemon_set = next(m for m in result.manifests if m["kind"] == "DaemonSet")
    assert daemon_set["spec"]["template"]["spec"]["nodeSelector"] == {"egress": "yes"}
    assert not [m for m in result.manifests if m["kind"] == "Node"]


def _cluster(*groups: str) -> view.ClusterView:
    return build(
        helpers.node("node-a"),
        *(helpers.group(name, helpers.PEERS_SPEC) for name in groups),
        with_netns(helpers.pod("api-0", node_name="node-a"), "member-0"),
        *(gateway_pod(name, "node-a") for name in groups),
    )


def test_a_named_cluster_puts_its_name_in_every_hostname_the_group_uses() -> None:
    opts = dataclasses.replace(OPTS, cluster_name="eu1")
    result = rendering.render_egress(view=_cluster("peers"), opts=opts)

    request = result.key_requests["peers"]
    assert request.hostname_prefix == "tailwire-eu1-peers"
    (gateway,) = result.plans["node-a"].gateways
    assert gateway.hostname == "tailwire-eu1-peers-node-a"
    config = result.groups["peers"].config
    assert config is not None
    assert config.config["Hostname"] == "tailwire-eu1-peers"


def test_an_unnamed_cluster_keeps_the_short_hostnames() -> None:
    result = rendering.render_egress(view=_cluster("peers"), opts=OPTS)
    assert result.key_requests["peers"].hostname_prefix == "tailwire-peers"
    assert result.plans["node-a"].gateways[0].hostname == "tailwire-peers-node-a"


def test_key_requests_name_the_longer_prefixes_of_other_groups() -> None:
    result = rendering.render_egress(view=_cluster("peers", "peers-eu", "peersx"), opts=OPTS)
    assert result.key_requests["peers"].nested_prefixes == ("tailwire-peers-eu",)
    assert result.key_requests["peers-eu"].nested_prefixes == ()
    assert result.key_requests["peersx"].nested_prefixes == ()


def test_replicas_other_than_one_are_accepted_and_said_to_have_no_effect() -> None:
    spec = {**helpers.PEERS_SPEC, "replicas": 3}
    result = rendering.render_egress(
        view=build(
            helpers.node("node-a"),
            helpers.group("peers", spec),
            helpers.pod("api-0", node_name="node-a"),
            gateway_pod("peers", "node-a"),
        ),
        opts=OPTS,
    )
    key = keys.KeyReady(
        owner=rendering.owner_ref(result.groups["peers"].group),
        tailnet="-",
        secret_name="s",
        secret_namespace="tailwire-system",
        key_id="k1",
        expires_at=NOW + datetime.timedelta(days=90),
        tags=("tag:k8s",),
    )
    generation = result.plans["node-a"].generation
    status = statuses.group_status(
        result=result.groups["peers"],
        key=key,
        plan_generations={"node-a": generation},
        acks={"node-a": nodes.NodeAck(node=ids.NodeName("node-a"), generation=generation)},
        now=NOW,
    )
    ready = {c.type: c for c in status.conditions}["Ready"]
    assert (ready.status, ready.reason) == ("True", "Reconciled")
    assert ready.message.endswith(
        "; spec.replicas 3 has no effect: one gateway runs on each node that hosts members"
    )
