"""Named network namespaces for tests and the demo: create, wire, run inside, always remove.

Every namespace gets a unique name (`tw-` + 8 random hex digits) so parallel runs never
collide, and is removed by `NetnsFactory.cleanup()` (also on failure: use it as a context
manager or through the `netns_factory` fixture), with a `weakref.finalize` and an `atexit`
backstop for the ones a crashed test left behind. Processes still running inside a namespace
this module created are killed first, so the namespace really goes away.

Links are created directly inside their namespaces (`ip link add ... netns A type veth peer
... netns B`), so nothing is ever added to, routed through or addressed in the host's own
namespace. `NetnsFactory.tailnet_peer()` builds DESIGN.md's simulated tailnet peer: a peer
namespace behind a veth whose gateway-side end is named `tailscale0`;
`NetnsFactory.set_gateway_sysctls()` does what the gateway pod's init container would.

This module must not touch namespaces it did not create, and needs root (`unavailable_reason`
says why it cannot run).
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import functools
import ipaddress
import os
import secrets
import shutil
import signal
import subprocess
import weakref
from collections.abc import Iterable, Sequence
from types import TracebackType

from tailwire.shared.k8s import names

PREFIX = "tw-"
TAILNET_IPV4 = ipaddress.ip_network("100.64.0.0/10")
TAILNET_IPV6 = ipaddress.ip_network("fd7a:115c:a1e0::/48")

# Every namespace this process created and has not removed yet (the atexit backstop's list).
_LIVE: set[str] = set()


class NetnsError(RuntimeError):
    """An `ip` (or other) command failed; carries the command and its stderr."""

    def __init__(self, argv: Sequence[str], *, returncode: int, stderr: str) -> None:
        super().__init__(f"{' '.join(argv)!r} exited {returncode}: {stderr.strip()}")
        self.argv = tuple(argv)
        self.returncode = returncode
        self.stderr = stderr


def run(
    argv: Sequence[str], *, netns: str | None = None, check: bool = True, timeout: float = 10.0
) -> subprocess.CompletedProcess[str]:
    """Run `argv`, inside `netns` (`ip netns exec`) when given; raise `NetnsError` on failure."""
    command = ["ip", "netns", "exec", netns, *argv] if netns else list(argv)
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise NetnsError(command, returncode=result.returncode, stderr=result.stderr)
    return result


@functools.cache
def unavailable_reason() -> str | None:
    """Why namespaces cannot be used here (not root, no iproute2, no permission), or None."""
    if os.geteuid() != 0:
        return "network namespaces need root (os.geteuid() != 0)"
    if shutil.which("ip") is None:
        return "iproute2's `ip` is not installed"
    # Root in a container may still lack CAP_SYS_ADMIN: probe with a real namespace.
    try:
        probe = create_netns()
    except (NetnsError, OSError, subprocess.TimeoutExpired) as error:
        return f"`ip netns add` does not work here: {error}"
    delete_netns(probe)
    return None


def list_netns() -> list[str]:
    """Names in `ip netns list` (all of them, not only ours)."""
    lines = run(["ip", "netns", "list"]).stdout.splitlines()
    return [line.split()[0] for line in lines if line.strip()]


def unique_name(*, prefix: str = PREFIX) -> str:
    return f"{prefix}{secrets.token_hex(4)}"


def create_netns(*, prefix: str = PREFIX) -> str:
    """A new namespace with `lo` up; registered for the atexit backstop."""
    name = unique_name(prefix=prefix)
    run(["ip", "netns", "add", name])
    _LIVE.add(name)
    try:
        run(["ip", "-n", name, "link", "set", "lo", "up"])
    except NetnsError:
        delete_netns(name)
        raise
    return name


def delete_netns(name: str) -> None:
    """Kill what still runs inside `name`, then remove it; only for namespaces made here."""
    if name not in _LIVE:
        raise ValueError(f"{name} was not created by this process; refusing to delete it")
    pids = run(["ip", "netns", "pids", name], check=False).stdout.split()
    for pid in pids:
        # Only processes inside a namespace we created: tests' pings, sleeps, servers.
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid), signal.SIGKILL)
    result = run(["ip", "netns", "del", name], check=False)
    if result.returncode != 0 and name in list_netns():
        raise NetnsError(
            ["ip", "netns", "del", name], returncode=result.returncode, stderr=result.stderr
        )
    _LIVE.discard(name)


def _delete_all(names: Iterable[str]) -> list[str]:
    """Remove every name, even when one fails; return the failures."""
    failures = []
    for name in list(names):
        try:
            delete_netns(name)
        except (NetnsError, ValueError, OSError, subprocess.TimeoutExpired) as error:
            failures.append(f"{name}: {error}")
    return failures


@atexit.register
def _remove_leftovers() -> None:
    _delete_all(_LIVE)


@dataclasses.dataclass(frozen=True, kw_only=True)
class VethPair:
    left_netns: str
    left: str
    right_netns: str
    right: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class TailnetPeer:
    """The simulated tailnet peer: `peer_netns` behind `gateway_link` (`tailscale0`)."""

    gateway_netns: str
    gateway_link: str
    gateway_ipv4: str
    gateway_ipv6: str
    peer_netns: str
    peer_link: str
    peer_ipv4: str
    peer_ipv6: str


class NetnsFactory:
    """Creates namespaces and links, remembers them, and removes them all in `cleanup()`."""

    def __init__(self, *, prefix: str = PREFIX) -> None:
        self.prefix = prefix
        self._names: set[str] = set()
        # If a factory is dropped without cleanup, its namespaces still go at collection.
        self._finalizer = weakref.finalize(self, _delete_all, self._names)

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self._names)

    def create(self) -> str:
        name = create_netns(prefix=self.prefix)
        self._names.add(name)
        return name

    def run(
        self, argv: Sequence[str], *, netns: str, check: bool = True, timeout: float = 10.0
    ) -> subprocess.CompletedProcess[str]:
        """Run `argv` inside one of this factory's namespaces."""
        self._own(netns)
        return run(argv, netns=netns, check=check, timeout=timeout)

    def veth(
        self,
        *,
        left: str,
        right: str,
        left_name: str = "veth0",
        right_name: str = "veth1",
        mtu: int | None = None,
    ) -> VethPair:
        """A veth pair born inside `left` and `right` (never in the host namespace), up."""
        self._own(left)
        self._own(right)
        extra = ["mtu", str(mtu)] if mtu else []
        run([
            "ip", "link", "add", left_name, "netns", left, *extra,
            "type", "veth", "peer", "name", right_name, "netns", right, *extra,
        ])  # fmt: skip
        run(["ip", "-n", left, "link", "set", left_name, "up"])
        run(["ip", "-n", right, "link", "set", right_name, "up"])
        return VethPair(left_netns=left, left=left_name, right_netns=right, right=right_name)

    def add_address(self, *, netns: str, link: str, address: str) -> None:
        """Assign `address` (CIDR); IPv6 skips DAD so it is usable at once."""
        self._own(netns)
        family = ipaddress.ip_interface(address).version
        nodad = ["nodad"] if family == 6 else []
        run(["ip", "-n", netns, f"-{family}", "addr", "add", address, "dev", link, *nodad])

    def add_route(self, *, netns: str, destination: str, link: str, via: str | None = None) -> None:
        self._own(netns)
        family = ipaddress.ip_network(destination, strict=False).version
        gateway = ["via", via] if via else []
        run(["ip", "-n", netns, f"-{family}", "route", "add", destination, *gateway, "dev", link])

    def wire_cni_eth0(self, *, netns: str, ip: str) -> None:
        """`eth0` holding `ip`/32 and the default route, as a CNI leaves a pod (a veth whose
        peer stays in the pod: no dummy driver everywhere)."""
        for argv in (
            ["ip", "link", "add", "eth0", "type", "veth", "peer", "name", "cni0"],
            ["ip", "addr", "add", f"{ip}/32", "dev", "eth0"],
            ["ip", "link", "set", "cni0", "up"],
            ["ip", "link", "set", "eth0", "up"],
            ["ip", "route", "add", "default", "dev", "eth0"],
        ):
            self.run(argv, netns=netns)

    def set_gateway_sysctls(self, netns: str) -> None:
        """What a gateway pod's privileged init container does in its netns (forwarding on,
        rp_filter off): the nodeagent only checks these, so a gateway netns made here needs
        them before the agent sees it."""
        self._own(netns)
        settings = [f"{key}={value}" for key, value in names.GATEWAY_SYSCTLS.items()]
        run(["sysctl", "-qw", *settings], netns=netns)

    def ping(self, *, netns: str, address: str, count: int = 1, wait: float = 2.0) -> bool:
        """Whether `address` answers an ICMP echo sent from `netns`."""
        family = ipaddress.ip_address(address).version
        argv = ["ping", f"-{family}", "-n", "-q", "-c", str(count), "-W", str(wait), address]
        return self.run(argv, netns=netns, check=False, timeout=count * wait + 5).returncode == 0

    def tailnet_peer(
        self,
        *,
        gateway: str,
        gateway_ipv4: str = "100.100.0.1",
        gateway_ipv6: str = "fd7a:115c:a1e0::1",
        peer_ipv4: str = "100.100.0.2",
        peer_ipv6: str = "fd7a:115c:a1e0::2",
        extra_addresses: Sequence[str] = (),
        route_tailnet_ranges: bool = False,
    ) -> TailnetPeer:
        """Put a tailnet peer behind `tailscale0` in `gateway` (DESIGN.md, Running and testing).

        The gateway gets `tailscale0` (MTU 1280, no neighbour discovery, like the real TUN)
        with its own tailnet addresses and host routes to the peer; with
        `route_tailnet_ranges` it routes all of `100.64.0.0/10` and the ULA there instead (by
        default that is left to the code under test). The peer sends everything back through
        the link and answers on `extra_addresses` too (held on its `lo`: other tailnet
        devices, hosts behind a subnet router, exit-node destinations).
        """
        for address, network in (
            (peer_ipv4, TAILNET_IPV4),
            (gateway_ipv4, TAILNET_IPV4),
            (peer_ipv6, TAILNET_IPV6),
            (gateway_ipv6, TAILNET_IPV6),
        ):
            if ipaddress.ip_address(address) not in network:
                raise ValueError(f"{address} is not in the tailnet range {network}")
        peer = self.create()
        pair = self.veth(left=gateway, right=peer, left_name="tailscale0", right_name="eth0",
                         mtu=1280)  # fmt: skip
        self._behave_like_a_tun(pair)
        self.add_address(netns=gateway, link="tailscale0", address=f"{gateway_ipv4}/32")
        self.add_address(netns=gateway, link="tailscale0", address=f"{gateway_ipv6}/128")
        self.add_address(netns=peer, link="eth0", address=f"{peer_ipv4}/32")
        self.add_address(netns=peer, link="eth0", address=f"{peer_ipv6}/128")
        for extra in extra_addresses:
            self.add_address(netns=peer, link="lo", address=str(ipaddress.ip_interface(extra)))
        if route_tailnet_ranges:
            self.add_route(netns=gateway, destination=str(TAILNET_IPV4), link="tailscale0")
            self.add_route(netns=gateway, destination=str(TAILNET_IPV6), link="tailscale0")
        else:
            self.add_route(netns=gateway, destination=f"{peer_ipv4}/32", link="tailscale0")
            self.add_route(netns=gateway, destination=f"{peer_ipv6}/128", link="tailscale0")
        self.add_route(netns=peer, destination="0.0.0.0/0", link="eth0")
        self.add_route(netns=peer, destination="::/0", link="eth0")
        return TailnetPeer(
            gateway_netns=gateway,
            gateway_link=pair.left,
            gateway_ipv4=gateway_ipv4,
            gateway_ipv6=gateway_ipv6,
            peer_netns=peer,
            peer_link=pair.right,
            peer_ipv4=peer_ipv4,
            peer_ipv6=peer_ipv6,
        )

    def _behave_like_a_tun(self, pair: VethPair) -> None:
        """Make a veth route like tailscaled's TUN: whatever goes in comes out at the peer.

        A TUN does no neighbour discovery, so a route "dev tailscale0" reaches tailscaled for
        any destination. With ARP/ND off, the kernel addresses frames to the sending link's
        own MAC; giving the far end that same MAC makes it accept them as its own. No per-
        address ARP or proxy-NDP entries, and IPv6 skips DAD on NOARP links.
        """
        shown = run(["ip", "-n", pair.left_netns, "-o", "link", "show", pair.left]).stdout
        mac = shown.split("link/ether ", 1)[1].split()[0]
        run(["ip", "-n", pair.right_netns, "link", "set", pair.right, "address", mac])
        run(["ip", "-n", pair.left_netns, "link", "set", pair.left, "arp", "off"])
        run(["ip", "-n", pair.right_netns, "link", "set", pair.right, "arp", "off"])

    def cleanup(self) -> None:
        """Remove every namespace this factory created (links inside go with them)."""
        failures = _delete_all(self._names)
        self._names.intersection_update(_LIVE)
        if failures:
            raise NetnsError(["cleanup"], returncode=1, stderr="; ".join(failures))

    def _own(self, netns: str) -> None:
        if netns not in self._names:
            raise ValueError(f"{netns} was not created by this factory")

    def __enter__(self) -> NetnsFactory:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.cleanup()
