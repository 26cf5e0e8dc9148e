"""The kernel, through pyroute2 (netlink), `/proc/sys` and `nft`: read state, apply changes.

A `Session` lives for one apply: it opens one rtnetlink socket per namespace (created on a
thread inside the namespace, so no helper process is forked), reads what `domain` compares
(all links and addresses; only routes and rules with `facts.PROTOCOL`), and applies
`facts.Change`s, counting every write. pyroute2's and the OS's errors become
`errors.DatapathError` naming the namespace and the change. It decides nothing.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import socket
from collections.abc import Iterator
from types import TracebackType
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from tailwire.services.nodeagent.adapters import namespaces, nftables
from tailwire.services.nodeagent.domain import facts
from tailwire.shared import errors

IFA_F_NODAD = 0x02
_FULL_MASK = 0xFFFFFFFF
_FAMILY = {4: socket.AF_INET, 6: socket.AF_INET6}
_VERSION = {socket.AF_INET: 4, socket.AF_INET6: 6}


def _open(path: str) -> IPRoute:
    def make() -> socket.socket:
        return socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, 0)  # NETLINK_ROUTE

    sock = namespaces.run_inside(path, make)
    return IPRoute(fileno=sock.detach(), groups=0)


@contextlib.contextmanager
def _netlink(what: str) -> Iterator[None]:
    try:
        yield
    except NetlinkError as exc:
        raise errors.DatapathError(f"{what}: {os.strerror(exc.code)} (errno {exc.code})") from exc
    except OSError as exc:
        raise errors.DatapathError(f"{what}: {exc}") from exc


class Session:
    """One apply's view of the kernel: namespace paths, sockets, and the write count."""

    def __init__(self) -> None:
        self.paths: dict[str, str] = {}
        self.writes = 0
        self._sockets: dict[str, IPRoute] = {}

    def bind(self, key: str, path: str) -> None:
        """Say where the namespace that changes call `key` lives."""
        self.paths[key] = path

    def ipr(self, key: str) -> IPRoute:
        if key not in self._sockets:
            path = self.paths.get(key)
            if path is None:
                raise namespaces.NamespaceNotFound(f"netns {key} was not resolved")
            with _netlink(f"netns {key}: netlink socket"):
                self._sockets[key] = _open(path)
        return self._sockets[key]

    def release(self, key: str) -> None:
        """Close one namespace's socket (a member's, once it is done)."""
        ipr = self._sockets.pop(key, None)
        if ipr is not None:
            with contextlib.suppress(Exception):
                ipr.close()

    def close(self) -> None:
        for ipr in self._sockets.values():
            with contextlib.suppress(Exception):
                ipr.close()
        self._sockets.clear()

    def __enter__(self) -> Session:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # --- reading --------------------------------------------------------------------------

    def read(self, key: str, *, gateway: bool = False) -> facts.NamespaceState:
        ipr = self.ipr(key)
        with _netlink(f"netns {key}: read"):
            raw_links = list(ipr.get_links())
            links: dict[str, facts.Link] = {}
            names: dict[int, str] = {}
            for msg in raw_links:
                name = msg.get("ifname")
                index = msg["index"]
                names[index] = name
                links[name] = facts.Link(
                    name=name,
                    index=index,
                    kind=msg.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND"),
                    mtu=msg.get("mtu") or 0,
                    up=bool(msg["flags"] & 1),
                    peer_index=msg.get("link"),
                    alias=msg.get("ifalias"),
                )
            addresses = frozenset(
                facts.Address(
                    dev=names.get(msg["index"], str(msg["index"])),
                    cidr=f"{msg.get('address')}/{msg['prefixlen']}",
                )
                for msg in ipr.get_addr()
            )
            routes = frozenset(
                self._route(msg, names)
                for msg in ipr.route("dump")
                if msg["proto"] == facts.PROTOCOL
            )
            rules = frozenset(
                self._rule(msg)
                for msg in ipr.get_rules()
                if msg.get("protocol") == facts.PROTOCOL and msg["family"] in _VERSION
            )
        sysctls: dict[str, str] = {}
        digest = None
        if gateway:
            sysctls = namespaces.read_sysctls(self.paths[key], tuple(facts.GATEWAY_SYSCTLS))
            digest = nftables.read_digest(self.paths[key])
        return facts.NamespaceState(
            links=links,
            addresses=addresses,
            routes=routes,
            rules=rules,
            sysctls=sysctls,
            nft_digest=digest,
        )

    @staticmethod
    def _route(msg: Any, names: dict[int, str]) -> facts.Route:
        family = _VERSION.get(msg["family"], 4)
        dst = msg.get("dst") or ("0.0.0.0" if family == 4 else "::")  # noqa: S104 (a default route)
        network = ipaddress.ip_network(f"{dst}/{msg['dst_len']}", strict=False)
        oif = msg.get("oif")
        return facts.Route(
            table=msg.get("table") or msg["table"],
            dst=str(network),
            dev=names.get(oif, str(oif)) if oif is not None else "",
            gateway=msg.get("gateway"),
        )

    def nft_digest(self, key: str) -> str | None:
        """The digest of our nftables table in a namespace already read, or None."""
        return nftables.read_digest(self.paths[key])

    @staticmethod
    def _rule(msg: Any) -> facts.Rule:
        dst = msg.get("dst")
        fwmark, fwmask = msg.get("fwmark"), msg.get("fwmask")
        return facts.Rule(
            family=_VERSION[msg["family"]],
            priority=msg.get("priority") or 0,
            table=msg.get("table") or msg["table"],
            dst=str(ipaddress.ip_network(f"{dst}/{msg['dst_len']}")) if dst else None,
            fwmark=fwmark,
            # The kernel reports the full mask of a plain `fwmark N`: that is no mask.
            fwmask=None if fwmark is None or fwmask in (None, _FULL_MASK) else fwmask,
        )

    # --- writing --------------------------------------------------------------------------

    def apply(self, change: facts.Change) -> None:
        """Apply one change; idempotent deletes (already gone is fine)."""
        with _netlink(change.describe().splitlines()[0]):
            try:
                self._apply(change)
            except NetlinkError as exc:
                gone = exc.code in (errno.ENODEV, errno.ENOENT, errno.ESRCH, errno.EADDRNOTAVAIL)
                deleting = isinstance(
                    change,
                    facts.DeleteLink | facts.DeleteAddress | facts.DeleteRoute | facts.DeleteRule,
                )
                if not (deleting and gone):
                    raise

    def _index(self, key: str, name: str) -> int:
        found = self.ipr(key).link_lookup(ifname=name)
        if not found:
            raise NetlinkError(errno.ENODEV, f"no link {name}")
        return int(found[0])

    def _apply(self, change: facts.Change) -> None:
        ns = change.netns
        self.writes += 1
        match change:
            case facts.CreateVeth():
                peer_fd = os.open(self.paths[change.peer_netns], os.O_RDONLY)
                try:
                    self.ipr(ns).link(
                        "add",
                        ifname=change.name,
                        kind="veth",
                        mtu=change.mtu,
                        state="up",
                        peer={
                            "ifname": change.peer_name,
                            "net_ns_fd": peer_fd,
                            "mtu": change.mtu,
                            "state": "up",
                        },
                    )
                finally:
                    os.close(peer_fd)
                self.writes += 2
                self.ipr(ns).link("set", index=self._index(ns, change.name), ifalias=change.alias)
                peer = self.ipr(change.peer_netns)
                peer.link("set", index=self._index(change.peer_netns, change.peer_name), state="up")
            case facts.DeleteLink():
                self.ipr(ns).link("del", index=self._index(ns, change.name))
            case facts.SetLink():
                extra: dict[str, Any] = {"state": "up"} if change.up else {}
                if change.mtu is not None:
                    extra["mtu"] = change.mtu
                if change.alias is not None:
                    extra["ifalias"] = change.alias
                self.ipr(ns).link("set", index=self._index(ns, change.name), **extra)
            case facts.AddAddress() | facts.DeleteAddress():
                iface = ipaddress.ip_interface(change.address.cidr)
                self.ipr(ns).addr(
                    "add" if isinstance(change, facts.AddAddress) else "del",
                    index=self._index(ns, change.address.dev),
                    address=str(iface.ip),
                    prefixlen=iface.network.prefixlen,
                    **({"flags": IFA_F_NODAD} if iface.version == 6 else {}),
                )
            case facts.AddRoute() | facts.DeleteRoute():
                route = change.route
                spec: dict[str, Any] = {
                    "dst": route.dst,
                    "table": route.table,
                    "proto": facts.PROTOCOL,
                    "oif": self._index(ns, route.dev),
                    "family": _FAMILY[route.family],
                }
                if route.gateway:
                    spec["gateway"] = route.gateway
                verb = "add" if isinstance(change, facts.AddRoute) else "del"
                self.ipr(ns).route(verb, **spec)
            case facts.AddRule() | facts.DeleteRule():
                rule = change.rule
                spec = {
                    "family": _FAMILY[rule.family],
                    "priority": rule.priority,
                    "table": rule.table,
                    "protocol": facts.PROTOCOL,
                }
                if rule.dst:
                    network = ipaddress.ip_network(rule.dst)
                    spec["dst"] = str(network.network_address)
                    spec["dst_len"] = network.prefixlen
                if rule.fwmark is not None:
                    spec["fwmark"] = rule.fwmark
                if rule.fwmask is not None:
                    spec["fwmask"] = rule.fwmask
                verb = "add" if isinstance(change, facts.AddRule) else "del"
                self.ipr(ns).rule(verb, **spec)
            case facts.SetSysctl():
                namespaces.write_sysctl(self.paths[ns], change.key, change.value)
            case facts.ReplaceNftables():
                nftables.replace(self.paths[ns], change.ruleset)
            case facts.DeleteNftables():
                nftables.delete(self.paths[ns])
            case _:
                raise errors.DatapathError(f"unknown change {change!r}")
