"""Device lifecycle and MagicDNS on the real tailnet (issue 13, proofs 5 and 7).

- Deleting a group: the keyminter's revocation (`minting.revoke`'s calls: the backend's
  keys and devices, `domain.owned_devices`) removes the group's gateway device from Headscale
  and spares a device of the same tag that another owner named. Headscale 0.28 moved a node's
  tags to `tags`; the client read only the old fields, so no device ever matched and every
  gateway leaked: found here.
- MagicDNS: a member whose only resolver is 100.100.100.100 resolves a peer's MagicDNS name
  through its gateway (the quad-100 resolver of the gateway's tailscaled, acceptDNS on).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from tailwire.services.keyminter import domain
from tailwire.services.keyminter.adapters import headscale_api, timing
from tailwire.testing import netns, tailnet
from tests.realpeers import egress

pytestmark = [pytest.mark.real_peers, pytest.mark.root, pytest.mark.slow, pytest.mark.timeout(240)]


async def test_revoking_a_group_removes_its_gateway_device_and_its_key(
    real_tailnet: tailnet.Tailnet, netns_factory: netns.NetnsFactory, short_root: Path
) -> None:
    # Another owner's device with the same tag and a longer prefix: it must stay.
    bystander = real_tailnet.peer("tailwire-payments-eu-node-a", tags=("tag:k8s",))
    node = egress.Node(net=real_tailnet, factory=netns_factory, root=short_root)
    node.pod("api-0")
    control = real_tailnet.control
    assert control.forwarder is not None
    async with httpx.AsyncClient(base_url=control.forwarder.url) as http:
        client = headscale_api.HeadscaleClient(
            http, api_key=SecretStr(control.api_key), user=None, clock=timing.SystemClock(),
            name="test",
        )  # fmt: skip
        minted = await client.mint_key(
            tags=("tag:k8s",), reusable=True, ephemeral=True, preauthorized=True,
            expiry_seconds=3600, description="",
        )  # fmt: skip
        await node.start_gateway(authkey=minted.secret.get_secret_value())
        hostname = f"tailwire-{egress.GROUP}-{egress.NODE}"
        assert real_tailnet.control.node(hostname).tags == ("tag:k8s",)

        # What minting.revoke does with the backend: delete the key, then the devices.
        await client.delete_key(minted.key_id)
        devices = await client.list_devices()
        owned = domain.owned_devices(
            devices,
            hostname_prefix=f"tailwire-{egress.GROUP}",
            tags=("tag:k8s",),
            nested_prefixes=("tailwire-payments-eu",),
        )
        assert [d.hostname for d in owned] == [hostname], devices
        for device in owned:
            await client.delete_device(device.id)
        await client.delete_device(owned[0].id)  # again: already gone is fine
    names = {n.name for n in control.nodes()}
    assert hostname not in names
    assert bystander.status()["Self"]["HostName"] in names
    # The key is expired: nothing joins with it any more.
    late = real_tailnet.factory.create()
    real_tailnet.control.attach(late)
    joiner = tailnet.Tailscaled(netns=late, statedir=short_root / "late", name="late")
    real_tailnet.daemons.append(joiner)
    joiner.start()
    with pytest.raises(tailnet.TailnetError, match=r"expired|invalid"):
        joiner.up(authkey=minted.secret.get_secret_value(), hostname="late", timeout=15)


async def test_a_gateway_that_stops_leaves_no_device_behind(
    real_tailnet: tailnet.Tailnet, netns_factory: netns.NetnsFactory, short_root: Path
) -> None:
    """Issue 14, item 7: when a node stops hosting a group's members its gateway pod goes, and
    with the renderer's ephemeral key the control plane removes that node's device once it
    has been offline for Headscale's inactivity timeout (66 s here, its minimum)."""
    node = egress.Node(net=real_tailnet, factory=netns_factory, root=short_root)
    node.pod("api-0")
    request = node.render().key_requests[egress.GROUP]
    assert request.ephemeral
    assert request.reusable
    gateway = await node.start_gateway(
        authkey=await egress.mint_key(real_tailnet.control, ephemeral=request.ephemeral)
    )
    hostname = f"tailwire-{egress.GROUP}-{egress.NODE}"
    assert hostname in {n.name for n in real_tailnet.control.nodes()}
    started = time.monotonic()
    gateway.close()  # the pod is gone from the node
    while hostname in {n.name for n in real_tailnet.control.nodes()}:
        assert time.monotonic() - started < 150, "the ephemeral gateway device was not removed"
        await asyncio.sleep(2)
    print(f"gateway device removed {time.monotonic() - started:.0f} s after it stopped")


CLUSTER_DNS_SCRIPT = """
import socket, dns.message, dns.rrset
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("{address}", 53))
while True:
    data, peer = s.recvfrom(4096)
    query = dns.message.from_wire(data)
    answer = dns.message.make_response(query)
    name = query.question[0].name.to_text()
    if name == "kubernetes.default.svc.cluster.local." and query.question[0].rdtype == 1:
        answer.answer.append(dns.rrset.from_text(name, 30, "IN", "A", "10.96.0.1"))
    elif query.question[0].rdtype == 1:
        answer.set_rcode(3)
    s.sendto(answer.to_wire(), peer)
"""


@contextlib.contextmanager
def resolv_conf(netns_name: str, text: str) -> Iterator[None]:
    """What `ip netns exec` binds over /etc/resolv.conf in that netns; removed afterwards
    (with /etc/netns itself when this made it)."""
    root = Path("/etc/netns")
    made_root = not root.exists()
    etc = root / netns_name
    etc.mkdir(parents=True, exist_ok=True)
    try:
        (etc / "resolv.conf").write_text(text)
        yield
    finally:
        shutil.rmtree(etc, ignore_errors=True)
        if made_root:
            shutil.rmtree(root, ignore_errors=True)


def dig(netns_name: str, name: str, qtype: str = "A") -> list[str]:
    argv = ["ip", "netns", "exec", netns_name, "dig", "+short", "+time=2", "+tries=5", name, qtype]
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=30, check=False
    ).stdout.split()


async def test_member_resolves_magicdns_names_through_its_gateway(
    real_tailnet: tailnet.Tailnet, netns_factory: netns.NetnsFactory, short_root: Path
) -> None:
    """Issue 14, item 8: the documented member dnsConfig (dnsPolicy None, nameserver
    100.100.100.100, the cluster's search domains) resolves tailnet names through the gateway
    and keeps cluster DNS: the gateway's tailscaled forwards what is not MagicDNS to the
    gateway pod's own resolver (here a stand-in "kube-dns" on the underlay)."""
    peer = real_tailnet.peer("db")
    kube_dns = netns_factory.create()
    address = real_tailnet.control.attach(kube_dns)
    server = subprocess.Popen(
        ["ip", "netns", "exec", kube_dns, sys.executable, "-c",
         CLUSTER_DNS_SCRIPT.format(address=address)]
    )  # fmt: skip
    try:
        node = egress.Node(net=real_tailnet, factory=netns_factory, root=short_root)
        node.set_spec(dns={"acceptDNS": True})
        member = node.pod("api-0")
        await node.start_gateway(
            authkey=await egress.mint_key(real_tailnet.control),
            resolv_conf=f"search default.svc.cluster.local svc.cluster.local cluster.local\n"
            f"nameserver {address}\noptions ndots:5\n",
        )
        # The member pod's resolv.conf as kubelet writes it for the documented dnsConfig.
        with resolv_conf(
            member.netns,
            "search payments.svc.cluster.local svc.cluster.local cluster.local\n"
            f"nameserver {tailnet.QUAD100}\n",
        ):
            magic = dig(member.netns, f"db.{tailnet.MAGICDNS_DOMAIN}")
            in_cluster = dig(member.netns, "kubernetes.default.svc.cluster.local")
        assert magic == [peer.ipv4()], real_tailnet.diagnostics()
        assert in_cluster == ["10.96.0.1"], real_tailnet.diagnostics()
    finally:
        server.kill()
        server.wait()
