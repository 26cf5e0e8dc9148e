"""Real netns: connections that reach a member on its own interface are answered through it.

A kubelet probe, a hostNetwork client or SNAT'd NodePort traffic comes to the pod's `eth0`
from a node address. With the exit node's default route (or a 10.0.0.0/8 route) via `ts0`,
the reply to an address that is not carved out would leave through the tailnet and be lost;
the member's conntrack mark sends it back through `eth0`. The "node" here is 10.0.5.5, in
no carve-out, so only that mark can answer it.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tailwire.services.nodeagent.adapters import namespaces
from tailwire.shared.events import nodes
from tests.nodeagent import conftest as nodeagent

pytestmark = pytest.mark.root

NODE_ADDRESS = "10.0.5.5"
POD_ADDRESS = "10.244.1.1"
PORT = 8080


def as_node(topology: nodeagent.Topology, *, index: int) -> None:
    """The node end of the pod's CNI veth: the pod's default gateway 10.244.1.254 and, on
    `lo`, the node address the probes come from."""
    f = topology.factory
    f.add_address(netns=topology.node, link=f"cni{index}", address="10.244.1.254/24")
    f.add_address(netns=topology.node, link="lo", address=f"{NODE_ADDRESS}/32")


@contextlib.contextmanager
def listening(pod: str) -> Iterator[socket.socket]:
    """A TCP listener inside the pod's netns that accepts in the background."""
    server = namespaces.run_inside(
        namespaces.named_path(pod), lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    )
    server.bind((POD_ADDRESS, PORT))
    server.listen(4)
    server.settimeout(5.0)

    def accept() -> None:
        with contextlib.suppress(OSError):
            while True:
                connection, _ = server.accept()
                connection.sendall(b"ok")
                connection.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.close()
        thread.join(timeout=6)


def connects_from_the_node(topology: nodeagent.Topology) -> bool:
    """A TCP connect from the node address to the pod (what a kubelet probe does)."""
    client = namespaces.run_inside(
        namespaces.named_path(topology.node),
        lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM),
    )
    try:
        client.settimeout(2.0)
        client.bind((NODE_ADDRESS, 0))
        client.connect((POD_ADDRESS, PORT))
        return client.recv(2) == b"ok"
    except OSError:
        return False
    finally:
        client.close()


def pings_from_the_node(topology: nodeagent.Topology) -> bool:
    argv = ["ping", "-4", "-n", "-q", "-c", "1", "-W", "2", "-I", NODE_ADDRESS, POD_ADDRESS]
    return topology.factory.run(argv, netns=topology.node, check=False, timeout=8).returncode == 0


@pytest.mark.parametrize(
    ("exit_node", "routes"),
    [
        pytest.param(True, (nodes.CGNAT_V4, nodes.TAILNET_ULA_V6), id="exit-node"),
        pytest.param(False, (nodes.CGNAT_V4, nodes.TAILNET_ULA_V6, "10.0.0.0/8"), id="10/8"),
    ],
)
async def test_a_member_answers_a_node_through_eth0_whatever_its_routes(
    topology: nodeagent.Topology, tmp_path: Path, exit_node: bool, routes: tuple[str, ...]
) -> None:
    pod = topology.pod(index=1)
    as_node(topology, index=1)
    member = nodeagent.member(
        uid="uid-a", pod=pod, index=1, exit_node=exit_node, routes=routes
    ).model_copy(update={"carve_outs": nodeagent.CLUSTER_CIDRS})
    with listening(pod):
        assert pings_from_the_node(topology)  # before tailwire: plain CNI
        ack = await nodeagent.make_agent(tmp_path).apply_plan(nodeagent.plan(topology, member))
        assert all(p.ok for p in ack.pods), ack.pods
        f = topology.factory
        # The node address is in no carve-out: new traffic to it still takes the tailnet...
        assert "dev ts0" in f.run(["ip", "route", "get", NODE_ADDRESS], netns=pod).stdout
        # ...but what arrived on eth0 is answered through eth0.
        assert pings_from_the_node(topology)
        assert connects_from_the_node(topology)
    # And the member's tailnet side is as it was.
    destination = nodeagent.EXIT_DESTINATION if exit_node else topology.peer.peer_ipv4
    assert topology.factory.ping(netns=pod, address=destination)


async def test_the_reply_marking_is_removed_with_the_exit_node_and_written_once(
    topology: nodeagent.Topology, tmp_path: Path
) -> None:
    pod = topology.pod(index=1)
    agent = nodeagent.make_agent(tmp_path)
    with_exit = nodeagent.member(uid="uid-a", pod=pod, index=1, exit_node=True)
    await agent.apply_plan(nodeagent.plan(topology, with_exit))
    f = topology.factory
    assert "tailwire" in f.run(["nft", "list", "tables"], netns=pod).stdout
    assert "fwmark 0x10000000/0x10000000 lookup main" in f.run(["ip", "rule"], netns=pod).stdout

    restarted = nodeagent.make_agent(tmp_path)
    again = await restarted.apply_plan(nodeagent.plan(topology, with_exit, generation=2))
    assert again.netlink_writes == 0

    without = nodeagent.member(uid="uid-a", pod=pod, index=1)
    ack = await restarted.apply_plan(nodeagent.plan(topology, without, generation=3))
    assert all(p.ok for p in ack.pods), ack.pods
    assert "tailwire" not in f.run(["nft", "list", "tables"], netns=pod).stdout
    assert "fwmark" not in f.run(["ip", "rule"], netns=pod).stdout
