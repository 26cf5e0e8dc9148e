"""The whole egress computation: cluster view in, everything the renderer publishes out.

`render_egress` is called by the handlers on every change and by `tailwire render` offline;
both get the same bytes. Plans come back with generation 0: the publisher numbers them,
because only it knows what it published before. `previous` plans keep link slots and
fwmarks stable across calls (an existing member never changes address when another joins).
Must not: do I/O, or depend on dict or snapshot arrival order.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pydantic

from tailwire.services.renderer import view as view_module
from tailwire.services.renderer.egress import configs, groups, links, manifests, options, routes
from tailwire.shared import ids, subjects
from tailwire.shared.events import base, cluster, gateways, keys, nodes
from tailwire.shared.k8s import labels, names
from tailwire.shared.resources import egressgroup, tailscaletailnet


@dataclasses.dataclass(frozen=True, kw_only=True)
class GroupResult:
    """What the computation found for one group (the status is built from this)."""

    group: groups.Group
    members: tuple[cluster.PodSnapshot, ...] = ()
    conflicts: tuple[tuple[str, str], ...] = ()
    decision: routes.RouteDecision | None = None
    gateway_nodes: tuple[str, ...] = ()
    # Members on nodes where the group runs no gateway (gateway.nodeSelector excludes them).
    unwired: tuple[str, ...] = ()
    config: gateways.GatewayConfig | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class EgressResult:
    groups: dict[str, GroupResult]
    plans: dict[str, nodes.NodePlan]
    manifests: list[manifests.Manifest]
    key_requests: dict[str, keys.KeyRequest]


def owner_ref(group: groups.Group) -> base.OwnerRef:
    return base.OwnerRef(
        api_version=egressgroup.API_VERSION, kind=egressgroup.KIND, name=group.name, uid=group.uid
    )


def key_request(
    group: groups.Group, *, opts: options.Options, prefixes: Iterable[str] = ()
) -> keys.KeyRequest:
    """The group's key request; `prefixes` are every group's hostname prefix, of which those
    extending this group's go along, so revoking it spares their devices."""
    spec = group.spec
    own = group.hostname_prefix
    return keys.KeyRequest(
        owner=owner_ref(group),
        tailnet=spec.tailnet if spec else None,
        tags=tuple(spec.tags) if spec else egressgroup.DEFAULT_TAGS,
        hostname_prefix=own,
        nested_prefixes=tuple(sorted({p for p in prefixes if p.startswith(own + "-")})),
        secret_name=names.authkey_secret(group.name),
        secret_namespace=opts.gateway_namespace,
        # Gateways join with ephemeral keys: a node that stops hosting the group's members
        # loses its gateway pod, and the control plane then removes that node's device once
        # it has been offline for a while (Headscale: node.ephemeral.inactivity_timeout;
        # Tailscale: shortly after). Deleting it from here instead would race the pod still
        # running there, which would log in again with the reusable key and leak for good.
        ephemeral=True,
        revoke=group.deleting,
    )


def gateway_config(group: groups.Group, *, server_url: str | None = None) -> gateways.GatewayConfig:
    config = configs.tailscaled_config(group, server_url=server_url)
    return gateways.GatewayConfig(
        group=ids.GroupName(group.name),
        tailnet=group.tailnet,
        generation=group.generation or 0,
        config=config,
        hash=gateways.config_hash(config),
    )


def control_urls(view: view_module.ClusterView) -> dict[str, str | None]:
    """TailscaleTailnet name -> the coordination server its gateways log in to."""
    found: dict[str, str | None] = {}
    for snapshot in view.of_kind(subjects.Kind.TAILSCALETAILNET):
        if snapshot.deleted:
            continue
        try:
            spec = tailscaletailnet.TailscaleTailnetSpec.model_validate(snapshot.spec)
        except pydantic.ValidationError:
            continue  # its own status says why; the group's TailnetsReady too
        found[snapshot.meta.name] = tailscaletailnet.control_url(spec)
    return found


def _server_url(
    group: groups.Group, servers: Mapping[str, str | None], opts: options.Options
) -> str | None:
    assert group.spec is not None
    return servers.get(group.spec.tailnet) if group.spec.tailnet else opts.control_url


def _gateway_nodes(
    group: groups.Group, *, member_nodes: set[str], node_labels: Mapping[str, Mapping[str, str]]
) -> tuple[str, ...]:
    assert group.spec is not None
    selector = group.spec.gateway.node_selector
    if not selector:
        return tuple(sorted(member_nodes))
    return tuple(
        sorted(
            node
            for node, node_labels_ in node_labels.items()
            if all(node_labels_.get(k) == v for k, v in selector.items())
        )
    )


def _gateway_pods(
    pods: list[cluster.PodSnapshot], *, namespace: str
) -> dict[tuple[str, str], cluster.PodSnapshot]:
    """(group label, node) -> that group's gateway pod on the node (first by name if several);
    the label is `labels.label_value` of the group's name."""
    found: dict[tuple[str, str], cluster.PodSnapshot] = {}
    for pod in sorted(pods, key=lambda p: p.meta.name):
        group = pod.meta.labels.get(labels.EGRESS_GROUP)
        if (
            group
            and pod.node_name
            and pod.meta.namespace == namespace
            and pod.phase not in groups.FINISHED_PHASES
        ):
            found.setdefault((group, pod.node_name), pod)
    return found


def render_egress(
    *,
    view: view_module.ClusterView,
    opts: options.Options,
    previous: Mapping[str, nodes.NodePlan] | None = None,
    gateway_results: Mapping[tuple[str, str], nodes.GatewayResult] | None = None,
) -> EgressResult:
    """`gateway_results`: (node, group) -> what that node's gateway last said in its ack. Its
    members follow it: the subnet routes it accepted from the tailnet (acceptRoutes), and
    no full tunnel while the group's exit node names no usable device (the gateway cleared
    it; members keep their own default route, and the status says why)."""
    previous = previous or {}
    gateway_results = gateway_results or {}
    all_groups = sorted(
        (
            groups.group_from_snapshot(s, cluster_name=opts.cluster_name)
            for s in view.egress_groups()
        ),
        key=lambda g: g.name,
    )
    pods = view.pods()
    namespaces = {p.meta.namespace or "" for p in pods}
    membership = groups.compute_membership(
        groups=all_groups,
        pods=pods,
        namespace_labels={ns: view.namespace_labels(ns) for ns in namespaces},
        gateway_namespace=opts.gateway_namespace,
    )
    node_labels = {n.meta.name: n.meta.labels for n in view.nodes()}
    node_addresses = {n.meta.name: n.internal_ips for n in view.nodes()}
    link_range = links.LinkRange(cidr_v4=opts.link_cidr_v4, cidr_v6=opts.link_cidr_v6)
    gateway_pods = _gateway_pods(pods, namespace=opts.gateway_namespace)
    servers = control_urls(view)

    results: dict[str, GroupResult] = {}
    by_node_members: dict[str, list[tuple[groups.Group, cluster.PodSnapshot]]] = {}
    by_node_groups: dict[str, list[groups.Group]] = {}
    label_scheduled: dict[str, tuple[str, ...]] = {}
    out_manifests: list[manifests.Manifest] = []
    key_requests: dict[str, keys.KeyRequest] = {}
    prefixes = [g.hostname_prefix for g in all_groups]
    for group in all_groups:
        if group.valid or group.deleting:
            key_requests[group.name] = key_request(group, opts=opts, prefixes=prefixes)
        if not group.active:
            results[group.name] = GroupResult(group=group)
            continue
        assert group.spec is not None
        members = membership.members.get(group.name, ())
        member_nodes = {p.node_name for p in members if p.node_name}
        gw_nodes = _gateway_nodes(group, member_nodes=member_nodes, node_labels=node_labels)
        if not group.spec.gateway.node_selector:
            label_scheduled[group.name] = gw_nodes
        wired = set(gw_nodes)
        unwired = []
        for pod in members:
            assert pod.node_name is not None
            if pod.node_name in wired:
                by_node_members.setdefault(pod.node_name, []).append((group, pod))
            else:
                unwired.append(f"{pod.meta.namespace}/{pod.meta.name}")
        for node in gw_nodes:
            by_node_groups.setdefault(node, []).append(group)
        decision = routes.decide_routes(
            spec_routes=group.spec.routes,
            subnet_mode=group.spec.mode == "subnet",
            exit_node=group.spec.exit_node is not None,
            cluster_cidrs=opts.cluster_cidrs,
            node_addresses=node_addresses,
        )
        results[group.name] = GroupResult(
            group=group,
            members=members,
            conflicts=membership.conflicts.get(group.name, ()),
            decision=decision,
            gateway_nodes=gw_nodes,
            unwired=tuple(unwired),
            config=gateway_config(
                group,
                server_url=servers.get(group.spec.tailnet)
                if group.spec.tailnet
                else opts.control_url,
            ),
        )
        out_manifests.append(manifests.config_map(group, gateway_nodes=gw_nodes, opts=opts))
        out_manifests.append(manifests.daemon_set(group, opts=opts))
    out_manifests.extend(manifests.node_labels(gateway_nodes=label_scheduled, current=node_labels))

    plan_nodes = set(node_labels) | set(by_node_members) | set(by_node_groups)
    plans = {
        node: _node_plan(
            node=node,
            member_pairs=by_node_members.get(node, []),
            node_groups=by_node_groups.get(node, []),
            results=results,
            gateway_pods=gateway_pods,
            link_range=link_range,
            opts=opts,
            previous=previous.get(node),
            said={
                g.name: gateway_results[(node, g.name)]
                for g in by_node_groups.get(node, [])
                if (node, g.name) in gateway_results
            },
            node_addresses=node_addresses,
        )
        for node in sorted(plan_nodes)
    }
    return EgressResult(
        groups=results, plans=plans, manifests=out_manifests, key_requests=key_requests
    )


def _netns(pod: cluster.PodSnapshot | None) -> str | None:
    return pod.meta.annotations.get(labels.NETNS) if pod is not None else None


def _node_plan(
    *,
    node: str,
    member_pairs: list[tuple[groups.Group, cluster.PodSnapshot]],
    node_groups: list[groups.Group],
    results: Mapping[str, GroupResult],
    gateway_pods: Mapping[tuple[str, str], cluster.PodSnapshot],
    link_range: links.LinkRange,
    opts: options.Options,
    previous: nodes.NodePlan | None,
    said: Mapping[str, nodes.GatewayResult],
    node_addresses: Mapping[str, Sequence[str]],
) -> nodes.NodePlan:
    prev_links: dict[str, int] = {}
    prev_marks: dict[str, int] = {}
    if previous is not None:
        for member in previous.members:
            slot = link_range.slot_of(member.link)
            if slot is not None:
                prev_links[member.pod_uid] = slot
        for gw in previous.gateways:
            prev_marks[gw.group] = gw.fwmark - links.MARK_BASE
    slots = link_range.assign((p.meta.uid for _, p in member_pairs), previous=prev_links)
    marks = links.allocate(
        (g.name for g in node_groups), size=links.GATEWAY_SLOTS, previous=prev_marks
    )
    gateway_list = []
    for group in sorted(node_groups, key=lambda g: g.name):
        pod = gateway_pods.get((labels.label_value(group.name), node))
        fwmark, table = links.gateway_mark_table(marks[group.name])
        config = results[group.name].config
        gateway_list.append(
            nodes.GatewayAssignment(
                group=ids.GroupName(group.name),
                pod_uid=ids.PodUID(pod.meta.uid) if pod else None,
                pod_namespace=pod.meta.namespace if pod else None,
                pod_name=pod.meta.name if pod else None,
                netns=_netns(pod),
                fwmark=fwmark,
                table=table,
                config_hash=config.hash if config else "",
                hostname=configs.hostname_for(group, node=node),
            )
        )
    member_list = []
    decisions: dict[str, tuple[routes.RouteDecision, bool]] = {}  # this node's, per group
    for group, pod in sorted(member_pairs, key=lambda gp: gp[1].meta.uid):
        if group.name not in decisions:
            decisions[group.name] = _node_decision(
                group, results[group.name], said.get(group.name), opts, node_addresses
            )
        decision, exit_node = decisions[group.name]
        member_list.append(
            nodes.MemberAssignment(
                pod_uid=ids.PodUID(pod.meta.uid),
                namespace=pod.meta.namespace or "",
                name=pod.meta.name,
                group=ids.GroupName(group.name),
                netns=_netns(pod),
                pod_ips=pod.pod_ips,
                link=link_range.addresses(slots[pod.meta.uid]),
                routes=decision.routes,
                exit_node=exit_node,
                carve_outs=decision.carve_outs,
            )
        )
    return nodes.NodePlan(
        node=ids.NodeName(node),
        generation=0,
        mtu=opts.mtu,
        exit_node_table=opts.exit_node_table,
        gateways=tuple(gateway_list),
        members=tuple(member_list),
    )


# What a gateway says when the group's exit node names no device it can use.
UNUSABLE_EXIT_NODE = frozenset({"ExitNodeNotFound", "ExitNodeAmbiguous"})


def _node_decision(
    group: groups.Group,
    result: GroupResult,
    said: nodes.GatewayResult | None,
    opts: options.Options,
    node_addresses: Mapping[str, Sequence[str]],
) -> tuple[routes.RouteDecision, bool]:
    """The group's routes on one node, following its gateway: (decision, full tunnel)."""
    assert group.spec is not None
    assert result.decision is not None
    exit_node = group.spec.exit_node is not None
    if said is not None and said.exit_node_reason in UNUSABLE_EXIT_NODE:
        exit_node = False
    accepted = said.tailnet_routes if said is not None and group.spec.accept_routes else ()
    if not accepted and exit_node == (group.spec.exit_node is not None):
        return result.decision, exit_node
    decision = routes.decide_routes(
        spec_routes=group.spec.routes,
        subnet_mode=group.spec.mode == "subnet",
        exit_node=exit_node,
        cluster_cidrs=opts.cluster_cidrs,
        node_addresses=node_addresses,
        accepted=accepted,
    )
    return decision, exit_node


def plan_document(plan: nodes.NodePlan) -> dict[str, Any]:
    """A plan as `tailwire render` prints it: a `kind: NodePlan` object."""
    body = plan.model_dump(mode="json", exclude={"version", "type", "node"})
    return {
        "apiVersion": "tailwire.dev/v1alpha1",
        "kind": "NodePlan",
        "metadata": {"name": plan.node},
        "spec": body,
    }
