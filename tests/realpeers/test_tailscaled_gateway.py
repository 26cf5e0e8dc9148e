"""A gateway on real tailscaled (v1.102.5) joined to a real Headscale: the rendered config is
what tailscaled runs (issue 13, proof 1), and a member pod reaches a tailnet peer through it
with real packets, v4 and v6, ICMP and TCP, while a non-member cannot (proof 2).

Also the defects of issue 14 that only a real tailscaled shows: each node's gateway registers
under its own hostname (item 1), and a Headscale tailnet's key goes to Headscale, not to
Tailscale's control plane (item 4: `ServerURL`)."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import pytest

from tailwire.testing import netns, tailnet
from tests.realpeers import egress

pytestmark = [pytest.mark.real_peers, pytest.mark.root, pytest.mark.slow, pytest.mark.timeout(180)]


def ping(factory: netns.NetnsFactory, *, source: str, address: str, within: float = 20.0) -> bool:
    """Whether `address` answers from `source` within `within` s (the first packets of a new
    WireGuard path may be lost while the peers' disco finds the direct path)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if factory.ping(netns=source, address=address, count=1, wait=1):
            return True
    return False


def tcp_echo(
    factory: netns.NetnsFactory, *, server_netns: str, port: int
) -> subprocess.Popen[bytes]:
    """A one-line TCP echo server on every address of `server_netns` (v4 and v6)."""
    script = (
        "import socket\n"
        "s = socket.socket(socket.AF_INET6)\n"
        "s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)\n"
        "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
        f"s.bind(('::', {port})); s.listen(8)\n"
        "while True:\n"
        "    c, a = s.accept(); c.sendall(c.recv(100)); c.close()\n"
    )
    return subprocess.Popen(["ip", "netns", "exec", server_netns, "python3", "-c", script])


def tcp_roundtrip(*, source: str, address: str, port: int) -> bytes:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    deadline = time.monotonic() + 20
    last: Exception | None = None
    while time.monotonic() < deadline:
        sock = tailnet.socket_in(source, family)
        sock.settimeout(3)
        try:
            sock.connect((address, port))
            sock.sendall(b"tailwire")
            return sock.recv(100)
        except OSError as exc:
            last = exc
            time.sleep(0.5)
        finally:
            sock.close()
    raise AssertionError(f"TCP to [{address}]:{port} from {source}: {last!r}")


async def test_rendered_config_is_what_real_tailscaled_runs(
    real_tailnet: tailnet.Tailnet, netns_factory: netns.NetnsFactory, short_root: Path
) -> None:
    node = egress.Node(net=real_tailnet, factory=netns_factory, root=short_root)
    node.set_spec(acceptRoutes=False, dns={"acceptDNS": True})
    node.pod("api-0")
    key = await egress.mint_key(real_tailnet.control)
    gateway = await node.start_gateway(authkey=key)

    prefs = gateway.prefs()
    plan = node.render().plans[egress.NODE]
    (assignment,) = plan.gateways
    # Proof 1: the prefs are what the group asked for, on this node.
    assert prefs["Hostname"] == assignment.hostname == f"tailwire-{egress.GROUP}-{egress.NODE}"
    assert prefs["ControlURL"] == tailnet.CONTROL_URL  # item 4: Headscale, not Tailscale's
    assert prefs["RouteAll"] is False
    assert prefs["CorpDNS"] is True  # dns.acceptDNS defaults to true
    assert prefs.get("ExitNodeID", "") == ""
    assert prefs.get("AdvertiseRoutes") in (None, [])
    # Item 1: the device is registered under the per-node name, with the group's tag.
    device = real_tailnet.control.node(assignment.hostname or "")
    assert device.tags == ("tag:k8s",), device
    assert device.given_name == assignment.hostname
    (result,) = node.agent.last_ack.gateways if node.agent.last_ack else ()
    assert result.hostname == assignment.hostname

    # acceptRoutes flipped on the running group reaches tailscaled through the LocalAPI.
    pid = gateway.pid
    node.set_spec(acceptRoutes=True)
    await node.reconcile(generation=3)
    assert gateway.prefs()["RouteAll"] is True
    assert gateway.pid == pid
    assert gateway.process is not None
    assert gateway.process.poll() is None


async def test_member_reaches_a_tailnet_peer_through_the_gateway_and_a_non_member_does_not(
    real_tailnet: tailnet.Tailnet, netns_factory: netns.NetnsFactory, short_root: Path
) -> None:
    peer = real_tailnet.peer("peer-a")
    echo = tcp_echo(netns_factory, server_netns=peer.netns, port=7000)
    try:
        node = egress.Node(net=real_tailnet, factory=netns_factory, root=short_root)
        member = node.pod("api-0")
        outsider = node.pod("other-0", member=False)
        await node.start_gateway(authkey=await egress.mint_key(real_tailnet.control))
        diagnostics = real_tailnet.diagnostics

        for address in (peer.ipv4(), peer.ipv6()):
            assert ping(netns_factory, source=member.netns, address=address), (
                f"member cannot ping {address}\n{diagnostics()}"
            )
            assert tcp_roundtrip(source=member.netns, address=address, port=7000) == b"tailwire"

        # The peer sees the gateway's tailnet address (the gateway MASQUERADEs members).
        # A pod on the same node that is not a member has no way there: not through its own
        # default route, and not by using the gateway's pod address as its router.
        attacker = netns_factory.create()
        real_tailnet.control.attach(attacker)
        netns_factory.run(
            ["ip", "route", "add", "100.64.0.0/10", "via", node.gateway_underlay], netns=attacker
        )
        for source in (outsider.netns, attacker):
            assert not ping(netns_factory, source=source, address=peer.ipv4(), within=3)
    finally:
        echo.kill()
        echo.wait()
