"""Subnet routes and the exit node through a real gateway tailscaled (issue 13, proofs 3, 4
and 6; issue 14, items 2 and 3).

- A peer advertises 10.0.0.0/8 (the seed's case: it contains the cluster CIDR) with a host
  behind it, approved on Headscale: a `mode: subnet` member reaches that host, and the
  cluster CIDR still leaves by the pod's own eth0.
- A peer offers itself as exit node with an "internet" host behind it: a member chosen by
  MagicDNS name (`exit-fra1.your-org.ts.net`, as in the seed) and by IP reaches that host;
  the group's status names the device resolved; a name that is no device is reported as
  ExitNodeNotFound, not sent to tailscaled as a StableNodeID; removing the exit node clears it.
- Reconcile without restart: acceptRoutes and the exit node switched on a running group are
  reloaded through the LocalAPI; same tailscaled PID; a ping loop loses at most what the
  reload costs.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path

import pytest

from tailwire.shared.events import nodes
from tailwire.testing import netns, tailnet
from tests.realpeers import egress
from tests.realpeers.test_tailscaled_gateway import ping

pytestmark = [pytest.mark.real_peers, pytest.mark.root, pytest.mark.slow, pytest.mark.timeout(240)]

# TEST-NET-3, a host of this test's one hop behind the exit node (over TEST-NET-2): tailscaled
# never lets exit-node users into the exit node's own subnets, so it cannot be on its LAN.
INTERNET_HOST = "203.0.113.10"
TRANSFER = "198.51.100.0/30"
SUBNET_HOST = "10.1.0.5"


def gateway_result(ack: nodes.NodeAck | None) -> nodes.GatewayResult:
    assert ack is not None
    (result,) = ack.gateways
    return result


async def test_subnet_route_containing_the_cluster_cidr_reaches_the_host_behind_it(
    real_tailnet: tailnet.Tailnet, netns_factory: netns.NetnsFactory, short_root: Path
) -> None:
    router = real_tailnet.peer("router", advertise_routes=["10.0.0.0/8"])
    real_tailnet.host_behind(router, address=f"{SUBNET_HOST}/16")
    node = egress.Node(net=real_tailnet, factory=netns_factory, root=short_root)
    node.set_spec(mode="subnet", routes=["10.0.0.0/8"], acceptRoutes=True)
    member = node.pod("api-0")
    gateway = await node.start_gateway(authkey=await egress.mint_key(real_tailnet.control))
    gateway.wait_peer(lambda p: "10.0.0.0/8" in (p.get("PrimaryRoutes") or []))

    assert ping(netns_factory, source=member.netns, address=SUBNET_HOST), real_tailnet.diagnostics()
    # The node's bridge (10.244.1.254, inside 10.0.0.0/8 and the cluster CIDR) still answers
    # through eth0: the carve-out keeps cluster traffic off ts0.
    assert ping(netns_factory, source=member.netns, address="10.244.1.254", within=3)
    route = netns_factory.run(["ip", "route", "get", "10.244.1.254"], netns=member.netns).stdout
    assert "dev eth0" in route, route
    route = netns_factory.run(["ip", "route", "get", SUBNET_HOST], netns=member.netns).stdout
    assert "dev ts0" in route, route


async def test_routes_the_gateway_accepts_reach_its_members(
    real_tailnet: tailnet.Tailnet, netns_factory: netns.NetnsFactory, short_root: Path
) -> None:
    """Issue 14, item 9: a plain group (no spec.routes, acceptRoutes by default) whose gateway
    accepts a peer's subnet route routes its members there too, as soon as the agent's ack
    says so; before, members reached only CGNAT and the ULA."""
    router = real_tailnet.peer("router", advertise_routes=["10.1.0.0/16"])
    real_tailnet.host_behind(router, address=f"{SUBNET_HOST}/16")
    node = egress.Node(net=real_tailnet, factory=netns_factory, root=short_root)
    member = node.pod("api-0")
    gateway = await node.start_gateway(authkey=await egress.mint_key(real_tailnet.control))
    gateway.wait_peer(lambda p: "10.1.0.0/16" in (p.get("PrimaryRoutes") or []))
    assert not ping(netns_factory, source=member.netns, address=SUBNET_HOST, within=2)

    assert await node.agent.refresh_exit_nodes() == [egress.GROUP]
    said = node.agent.gateway_result(egress.GROUP, ok=True)
    assert said.tailnet_routes == ("10.1.0.0/16",)
    await node.reconcile(generation=3)  # the renderer follows the ack
    (planned,) = node.agent.last_plan.members if node.agent.last_plan else ()
    assert "10.1.0.0/16" in planned.routes
    assert ping(netns_factory, source=member.netns, address=SUBNET_HOST), real_tailnet.diagnostics()
    # acceptRoutes off: the gateway stops taking the route, and so do the members.
    node.set_spec(acceptRoutes=False)
    await node.reconcile(generation=4)
    assert node.agent.gateway_result(egress.GROUP, ok=True).tailnet_routes == ()
    await node.reconcile(generation=5)
    route = netns_factory.run(["ip", "route", "get", SUBNET_HOST], netns=member.netns).stdout
    assert "dev ts0" not in route, route


async def test_exit_node_by_magicdns_name_and_by_ip_with_status_and_clearing(
    real_tailnet: tailnet.Tailnet, netns_factory: netns.NetnsFactory, short_root: Path
) -> None:
    exit_node = real_tailnet.peer("exit-fra1", exit_node=True)
    real_tailnet.host_behind(exit_node, address=f"{INTERNET_HOST}/32", transfer=TRANSFER)
    other_exit = real_tailnet.peer("exit-ams1", exit_node=True)
    real_tailnet.host_behind(other_exit, address=f"{INTERNET_HOST}/32", transfer=TRANSFER)
    node = egress.Node(net=real_tailnet, factory=netns_factory, root=short_root)
    node.set_spec(exitNode={"nodeID": f"exit-fra1.{tailnet.MAGICDNS_DOMAIN}"})
    member = node.pod("api-0")
    gateway = await node.start_gateway(authkey=await egress.mint_key(real_tailnet.control))
    gateway.wait_peer(lambda p: bool(p.get("ExitNodeOption")) and p.get("HostName") == "exit-fra1")
    pid = gateway.pid

    # The gateway started before it had peers: the agent resolves the name once they come.
    assert await node.agent.refresh_exit_nodes() == [egress.GROUP]
    fra1 = real_tailnet.control.node("exit-fra1")
    assert gateway.prefs()["ExitNodeID"] == fra1.id  # the StableNodeID, not the name
    result = node.agent.gateway_result(egress.GROUP, ok=True)
    assert (
        result.exit_node
        == f"exit-fra1.{tailnet.MAGICDNS_DOMAIN} ({egress.v4(fra1.ip_addresses)}, id {fra1.id})"
    )
    assert result.exit_node_reason is None
    assert ping(netns_factory, source=member.netns, address=INTERNET_HOST), (
        real_tailnet.diagnostics()
    )
    # Cluster traffic stays on eth0 under the full tunnel.
    route = netns_factory.run(["ip", "route", "get", "10.244.1.254"], netns=member.netns).stdout
    assert "dev eth0" in route, route

    # Switch to the other exit node by IP, on the running gateway, while a member pings.
    ams1 = real_tailnet.control.node("exit-ams1")
    pinger = subprocess.Popen(  # one echo every 50 ms for the switch
        ["ip", "netns", "exec", member.netns, "ping", "-n", "-i", "0.05", "-W", "1", INTERNET_HOST],
        stdout=subprocess.PIPE,
        text=True,
    )
    await asyncio.sleep(1)
    node.set_spec(exitNode={"nodeID": egress.v4(ams1.ip_addresses)})
    started = time.monotonic()
    await node.reconcile(generation=3)
    reload_seconds = time.monotonic() - started
    await asyncio.sleep(2)
    pinger.send_signal(2)
    out, _ = pinger.communicate(timeout=10)
    assert gateway.prefs()["ExitNodeID"] == ams1.id
    assert gateway.pid == pid
    sent = int(out.split(" packets transmitted")[0].rsplit("\n", 1)[-1])
    received = int(out.split(" received")[0].rsplit(", ", 1)[-1])
    lost = sent - received
    # What the reload costs: tailscaled reconfigures WireGuard and its routes in place.
    print(f"exit-node switch: reload {reload_seconds * 1000:.0f} ms, lost {lost} of {sent} pings")
    assert lost <= max(3, int(reload_seconds / 0.05) + 3), out

    # A name that is no device: reported, and nothing is sent to tailscaled as an ID.
    node.set_spec(exitNode={"nodeID": f"exit-nowhere.{tailnet.MAGICDNS_DOMAIN}"})
    await node.reconcile(generation=4)
    result = node.agent.gateway_result(egress.GROUP, ok=True)
    assert result.exit_node_reason == "ExitNodeNotFound"
    assert "exit-nowhere" in (result.exit_node_message or "")
    assert gateway.prefs().get("ExitNodeID", "") == ""
    # ... and the renderer, following that ack, takes the members' full tunnel away rather
    # than send their traffic into a gateway that has no exit node.
    await node.reconcile(generation=5)
    route = netns_factory.run(["ip", "route", "get", INTERNET_HOST], netns=member.netns).stdout
    assert "dev eth0" in route, route

    # Removing exitNode clears it in tailscaled (a reload applies only the fields present).
    node.set_spec(exitNode={"nodeID": "exit-fra1"})
    await node.reconcile(generation=6)
    await node.agent.refresh_exit_nodes()
    assert gateway.prefs()["ExitNodeID"] == fra1.id
    await node.reconcile(generation=7)
    assert ping(netns_factory, source=member.netns, address=INTERNET_HOST)
    node.set_spec()
    await node.reconcile(generation=8)
    assert gateway.prefs().get("ExitNodeID", "") == ""
    assert gateway.pid == pid
