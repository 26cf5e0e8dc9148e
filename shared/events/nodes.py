"""Node plans and acks: `tailwire.v1.node.<node>.plan` and `.ack`.

A plan is the node's *full* desired state (level-triggered: the agent compares it with the
kernel and writes the difference), with a generation that grows whenever it changes. The
agent answers with an ack naming the generation it applied and a result per pod.
"""

from __future__ import annotations

import datetime
from typing import Literal

from pydantic import Field

from tailwire.shared import ids
from tailwire.shared.events import base

CGNAT_V4 = "100.64.0.0/10"
TAILNET_ULA_V6 = "fd7a:115c:a1e0::/48"
DEFAULT_MTU = 1280
DEFAULT_EXIT_NODE_TABLE = 7717


class LinkAddresses(base.Frozen):
    """The two ends of a member's veth, dual-stack, as CIDR strings (`169.254.64.7/31`)."""

    member_v4: str
    gateway_v4: str
    member_v6: str
    gateway_v6: str


class GatewayAssignment(base.Frozen):
    """One group's gateway pod on this node, and how the agent prepares its netns."""

    group: ids.GroupName
    pod_uid: ids.PodUID | None = None
    pod_namespace: str | None = None
    pod_name: str | None = None
    # Named netns (tests, `tailwire dev`); otherwise the agent finds it by pod UID.
    netns: str | None = None
    fwmark: int = Field(ge=1, le=2**32 - 1)
    table: int = Field(ge=1, le=2**31 - 1)
    config_hash: str = ""
    # Added by the renderer (issue 5): the per-node tailnet hostname; the group's config
    # (`tailwire.v1.gateway.<group>.config`) is shared by every node, so the agent writes this
    # value as `Hostname` into the node's copy of the file. None: keep the config's own.
    hostname: str | None = None


class MemberAssignment(base.Frozen):
    """One member pod: its veth to the group's gateway and what it routes there."""

    pod_uid: ids.PodUID
    namespace: str
    name: str
    group: ids.GroupName
    netns: str | None = None
    pod_ips: tuple[str, ...] = ()
    link: LinkAddresses
    # Destinations routed via the gateway in the pod's main table (CGNAT, ULA, spec.routes).
    routes: tuple[str, ...]
    # Full tunnel through the group's exit node: default routes in `exit_node_table`.
    exit_node: bool = False
    # Cluster CIDRs, then node addresses (InternalIPs, adjacent ones merged), kept on the pod's
    # own interface (rules to `main` ahead of the others) whenever a group route or the exit
    # node covers them.
    carve_outs: tuple[str, ...] = ()


class NodePlan(base.Event):
    type: Literal["node.plan"] = "node.plan"
    node: ids.NodeName
    generation: int = Field(ge=0)
    mtu: int = DEFAULT_MTU
    exit_node_table: int = DEFAULT_EXIT_NODE_TABLE
    gateways: tuple[GatewayAssignment, ...] = ()
    members: tuple[MemberAssignment, ...] = ()

    def content_key(self) -> str:
        """The plan without its generation: equal keys mean nothing changed for the node."""
        return self.model_copy(update={"generation": 0}).model_dump_json()


class PodResult(base.Frozen):
    pod_uid: ids.PodUID
    ok: bool
    error: str | None = None
    duration_ms: float = 0.0
    writes: int = 0


class GatewayResult(base.Frozen):
    group: ids.GroupName
    ok: bool
    error: str | None = None
    config_hash: str = ""
    # The device this node's gateway registers as (the plan's hostname, written into its file).
    hostname: str | None = None
    # The group's exit node as this gateway resolved it (`name (ip, id ...)`), or why not:
    # `exit_node_reason` is ExitNodeNotFound, ExitNodeAmbiguous, ExitNodeNotOffered or
    # GatewayNotRunning, with a message naming the target. None: no exit node wanted.
    exit_node: str | None = None
    exit_node_reason: str | None = None
    exit_node_message: str | None = None
    # The subnet routes this gateway accepted from the tailnet (peers' primary routes, when
    # the group has acceptRoutes), sorted; the renderer routes the node's members to them.
    tailnet_routes: tuple[str, ...] = ()


class NodeAck(base.Event):
    type: Literal["node.ack"] = "node.ack"
    node: ids.NodeName
    generation: int
    applied_at: datetime.datetime = Field(default_factory=base.utcnow)
    duration_ms: float = 0.0
    pods: tuple[PodResult, ...] = ()
    gateways: tuple[GatewayResult, ...] = ()
    # Pods whose links this apply removed because they left the plan.
    removed: tuple[ids.PodUID, ...] = ()
    netlink_writes: int = 0
