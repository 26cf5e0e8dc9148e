"""The simulated tailnet peer answers from behind `tailscale0` over IPv4 and IPv6."""

from __future__ import annotations

import ipaddress

import pytest

from tailwire.testing import netns

pytestmark = pytest.mark.root


def test_peer_answers_ping_from_the_gateway(netns_factory: netns.NetnsFactory) -> None:
    gateway = netns_factory.create()
    peer = netns_factory.tailnet_peer(gateway=gateway)

    assert peer.gateway_link == "tailscale0"
    assert ipaddress.ip_address(peer.peer_ipv4) in netns.TAILNET_IPV4
    assert ipaddress.ip_address(peer.peer_ipv6) in netns.TAILNET_IPV6
    links = netns_factory.run(["ip", "-o", "link", "show"], netns=gateway).stdout
    assert "tailscale0" in links
    assert netns_factory.ping(netns=gateway, address=peer.peer_ipv4)
    assert netns_factory.ping(netns=gateway, address=peer.peer_ipv6)


def test_tailnet_ranges_are_left_to_the_code_under_test(
    netns_factory: netns.NetnsFactory,
) -> None:
    gateway = netns_factory.create()
    netns_factory.tailnet_peer(gateway=gateway, extra_addresses=["100.101.0.7/32"])
    routes = netns_factory.run(["ip", "route", "show"], netns=gateway).stdout
    assert "100.64.0.0/10" not in routes
    assert not netns_factory.ping(netns=gateway, address="100.101.0.7", wait=0.5)

    # What the nodeagent will do: route the tailnet range via tailscale0.
    netns_factory.add_route(netns=gateway, destination="100.64.0.0/10", link="tailscale0")
    assert netns_factory.ping(netns=gateway, address="100.101.0.7")


def test_peer_can_route_the_tailnet_ranges_itself(netns_factory: netns.NetnsFactory) -> None:
    gateway = netns_factory.create()
    netns_factory.tailnet_peer(
        gateway=gateway,
        extra_addresses=["100.101.0.7/32", "fd7a:115c:a1e0::7/128"],
        route_tailnet_ranges=True,
    )
    assert netns_factory.ping(netns=gateway, address="100.101.0.7")
    assert netns_factory.ping(netns=gateway, address="fd7a:115c:a1e0::7")


def test_peer_addresses_must_be_tailnet_addresses(netns_factory: netns.NetnsFactory) -> None:
    gateway = netns_factory.create()
    with pytest.raises(ValueError, match="tailnet range"):
        netns_factory.tailnet_peer(gateway=gateway, peer_ipv4="10.0.0.2")
    assert netns_factory.names == frozenset({gateway})


def test_peer_namespace_is_removed_with_the_rest(netns_factory: netns.NetnsFactory) -> None:
    gateway = netns_factory.create()
    peer = netns_factory.tailnet_peer(gateway=gateway)
    assert peer.peer_netns in netns_factory.names
    netns_factory.cleanup()
    assert not {gateway, peer.peer_netns} & set(netns.list_netns())
