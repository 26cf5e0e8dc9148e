"""Fixtures of the nodeagent tests: a gateway netns with a simulated tailnet peer, pod netns
with a CNI-like `eth0`, and plans that stitch them."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from tailwire.services.nodeagent import reconciling
from tailwire.services.renderer.egress import links, options
from tailwire.shared import ids
from tailwire.shared.events import nodes
from tailwire.testing import netns

# Link addresses as the renderer assigns them (slot = index).
LINKS = links.LinkRange(
    cidr_v4=options.Options().link_cidr_v4, cidr_v6=options.Options().link_cidr_v6
)

NODE = "node-a"
GROUP = "payments"
FWMARK = 0x1E
GATEWAY_TABLE = 1717
CLUSTER_CIDRS = ("10.244.0.0/16", "10.96.0.0/12")
EXIT_DESTINATION = "1.1.1.1"


@dataclasses.dataclass(frozen=True, kw_only=True)
class Topology:
    factory: netns.NetnsFactory
    gateway: str
    peer: netns.TailnetPeer
    node: str  # the "node" side of the pods' CNI veths

    def pod(self, *, index: int) -> str:
        """A pod netns with `eth0` 10.244.1.<index>/24 and a default route via the node."""
        pod = self.factory.create()
        self.factory.veth(left=pod, right=self.node, left_name="eth0", right_name=f"cni{index}")
        self.factory.add_address(netns=pod, link="eth0", address=f"10.244.1.{index}/24")
        self.factory.add_route(netns=pod, destination="0.0.0.0/0", link="eth0", via="10.244.1.254")
        return pod


@pytest.fixture
def topology(netns_factory: netns.NetnsFactory) -> Topology:
    gateway = netns_factory.create()
    netns_factory.set_gateway_sysctls(gateway)  # as the gateway pod's init container does
    peer = netns_factory.tailnet_peer(
        gateway=gateway, extra_addresses=[f"{EXIT_DESTINATION}/32", "100.101.0.7/32"]
    )
    # A tailnet peer only knows the gateway node's tailnet address: replies reach a member
    # only if the gateway MASQUERADEs.
    for default in ("0.0.0.0/0", "::/0"):
        netns_factory.run(["ip", "route", "del", default], netns=peer.peer_netns)
    netns_factory.add_route(
        netns=peer.peer_netns, destination=f"{peer.gateway_ipv4}/32", link="eth0"
    )
    netns_factory.add_route(
        netns=peer.peer_netns, destination=f"{peer.gateway_ipv6}/128", link="eth0"
    )
    node = netns_factory.create()
    return Topology(factory=netns_factory, gateway=gateway, peer=peer, node=node)


def member(
    *,
    uid: str,
    pod: str,
    index: int,
    exit_node: bool = False,
    routes: tuple[str, ...] = (nodes.CGNAT_V4, nodes.TAILNET_ULA_V6),
) -> nodes.MemberAssignment:
    return nodes.MemberAssignment(
        pod_uid=ids.PodUID(uid),
        namespace="payments",
        name=f"api-{index}",
        group=ids.GroupName(GROUP),
        netns=pod,
        link=LINKS.addresses(index),
        routes=routes,
        exit_node=exit_node,
        carve_outs=CLUSTER_CIDRS if exit_node else (),
    )


def plan(
    topology: Topology, *members: nodes.MemberAssignment, generation: int = 1
) -> nodes.NodePlan:
    return nodes.NodePlan(
        node=ids.NodeName(NODE),
        generation=generation,
        gateways=(
            nodes.GatewayAssignment(
                group=ids.GroupName(GROUP),
                netns=topology.gateway,
                fwmark=FWMARK,
                table=GATEWAY_TABLE,
            ),
        ),
        members=members,
    )


def make_agent(tmp_path: Path, **overrides: object) -> reconciling.Agent:
    options = reconciling.Options(
        node=NODE,
        link_ranges=("169.254.64.0/18", "fd74:7769:7265::/80"),
        gateway_state_root=str(tmp_path / "gateways"),
        **overrides,  # type: ignore[arg-type]
    )
    return reconciling.Agent(options=options)
