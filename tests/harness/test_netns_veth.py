"""A veth pair between two namespaces carries IPv4 and IPv6, and never touches the host."""

from __future__ import annotations

import pytest

from tailwire.testing import netns

pytestmark = pytest.mark.root


def test_veth_passes_ping_over_v4_and_v6(netns_factory: netns.NetnsFactory) -> None:
    left, right = netns_factory.create(), netns_factory.create()
    pair = netns_factory.veth(left=left, right=right, left_name="twl0", right_name="twr0")
    # Documentation prefixes (RFC 5737, RFC 3849): never routed anywhere real.
    netns_factory.add_address(netns=left, link=pair.left, address="192.0.2.1/24")
    netns_factory.add_address(netns=right, link=pair.right, address="192.0.2.2/24")
    netns_factory.add_address(netns=left, link=pair.left, address="2001:db8::1/64")
    netns_factory.add_address(netns=right, link=pair.right, address="2001:db8::2/64")

    assert netns_factory.ping(netns=left, address="192.0.2.2")
    assert netns_factory.ping(netns=right, address="2001:db8::1")
    assert not netns_factory.ping(netns=left, address="192.0.2.99", wait=0.5)


def test_links_live_only_inside_their_namespaces(netns_factory: netns.NetnsFactory) -> None:
    left, right = netns_factory.create(), netns_factory.create()
    pair = netns_factory.veth(left=left, right=right, left_name="twl1", right_name="twr1", mtu=1280)
    shown = netns_factory.run(["ip", "-o", "link", "show", pair.left], netns=left).stdout
    assert "mtu 1280" in shown
    host = netns.run(["ip", "-o", "link", "show"]).stdout
    assert "twl1" not in host
    assert "twr1" not in host
