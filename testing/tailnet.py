"""A real tailnet on one machine: Headscale and tailscaled, each in a network namespace.

Built from `testing/peers` (`tailscale.com` and Headscale at the versions pinned there), with
no account and no internet. The layout, all inside namespaces this module's `NetnsFactory`
made (nothing is addressed or routed in the host's own namespace):

- the underlay: a `lan` namespace holding bridge `br0` with `172.31.77.1/24` where Headscale
  listens (`http://172.31.77.1:8080`, its embedded DERP on the same port over plain HTTP,
  STUN on 3478). A private address on purpose: tailscaled never falls back to HTTPS for a
  plain-HTTP control URL on a private host (tailscale.com/control/ts2021), while for any other
  host it forces port 443 after its first reconnect, and the gateway loses its control plane;
- every tailscaled gets a veth `ul0` into that bridge with its own `172.31.77.N/24`;
- the test process reaches Headscale's REST API through `Forwarder`, a loopback port whose
  connections are made from a socket created inside `lan`; the `headscale` CLI talks to the
  server over its unix socket, which a file path reaches from any namespace.

`Tailscaled` runs tailscaled with a real TUN (`tailscale0`), the state and LocalAPI socket in
a directory of the test's, logs off (`--no-logs-no-support`), and DERP over HTTP
(`TS_DEBUG_USE_DERP_HTTP`). A gateway's tailscaled reads the nodeagent's config file
(`--config`) and the authkey from the path the gateway pod mounts it at: the process runs in
a private mount namespace whose `/etc` is the host's with that one file laid over it.

Must not: reach anything outside the namespaces it made, leave a process or a namespace
behind (everything stops in `close()`), or put a key in a log line.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx

from tailwire.services.nodeagent.adapters import namespaces as agent_namespaces
from tailwire.shared.k8s import names
from tailwire.testing import netns as netns_module
from tailwire.testing import peers

LAN = ipaddress.ip_network("172.31.77.0/24")
CONTROL_ADDRESS = "172.31.77.1"
CONTROL_PORT = 8080
CONTROL_URL = f"http://{CONTROL_ADDRESS}:{CONTROL_PORT}"
MAGICDNS_DOMAIN = "your-org.ts.net"  # the seed's tailnet name: `exit-fra1.your-org.ts.net`
TAGS = ("tag:k8s", "tag:peer")
QUAD100 = "100.100.100.100"
LOCALAPI_HOST = "local-tailscaled.sock"


class TailnetError(RuntimeError):
    """A peer did not start or answer; carries what it printed."""


def socket_in(netns: str, family: int = socket.AF_INET) -> socket.socket:
    """A TCP socket that belongs to `netns` (made on a thread that entered it)."""
    path = agent_namespaces.named_path(netns)
    return agent_namespaces.run_inside(path, lambda: socket.socket(family, socket.SOCK_STREAM))


class Forwarder:
    """`127.0.0.1:<port>` in the host namespace -> `host:port` inside `netns`, TCP, threads."""

    def __init__(self, *, netns: str, host: str, port: int) -> None:
        self.netns, self.host, self.port = netns, host, port
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.local_port: int = self._listener.getsockname()[1]
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="tailnet-forwarder", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.local_port}"

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        upstream = socket_in(self.netns)
        try:
            upstream.settimeout(10)
            upstream.connect((self.host, self.port))
            upstream.settimeout(None)
        except OSError:
            upstream.close()
            client.close()
            return

        def pump(src: socket.socket, dst: socket.socket) -> None:
            try:
                while chunk := src.recv(65536):
                    dst.sendall(chunk)
            except OSError:
                pass
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)

        other = threading.Thread(target=pump, args=(upstream, client), daemon=True)
        other.start()
        pump(client, upstream)
        other.join(timeout=30)
        client.close()
        upstream.close()

    def close(self) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()


def _wait(
    what: str, check: Callable[[], bool], *, within: float, process: subprocess.Popen[bytes] | None
) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise TailnetError(f"{what}: exited {process.returncode} while starting")
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(0.1)
    raise TailnetError(f"{what}: not ready within {within:.0f} s")


def _stop(process: subprocess.Popen[bytes] | None, *, grace: float = 5.0) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=grace)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Node:
    """A device as Headscale's REST API lists it."""

    id: str
    name: str
    given_name: str
    ip_addresses: tuple[str, ...]
    tags: tuple[str, ...]
    online: bool
    approved_routes: tuple[str, ...]
    available_routes: tuple[str, ...]

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> Node:
        return cls(
            id=str(data["id"]),
            name=str(data.get("name") or ""),
            given_name=str(data.get("givenName") or ""),
            ip_addresses=tuple(data.get("ipAddresses") or ()),
            tags=tuple(data.get("tags") or ()),
            online=bool(data.get("online")),
            approved_routes=tuple(data.get("approvedRoutes") or ()),
            available_routes=tuple(data.get("availableRoutes") or ()),
        )


class Headscale:
    """One Headscale server in the `lan` namespace; `api_url` and `api_key` for its REST API."""

    def __init__(self, *, factory: netns_module.NetnsFactory, workdir: Path) -> None:
        self.factory = factory
        self.workdir = workdir
        self.lan = factory.create()
        self._next_host = 2
        self._lock = threading.Lock()
        self.process: subprocess.Popen[bytes] | None = None
        self.forwarder: Forwarder | None = None
        self.api_key = ""
        self.config_path = workdir / "headscale.yaml"
        self.socket_path = workdir / "headscale.sock"
        self.log_path = workdir / "headscale.log"

    # --- underlay -------------------------------------------------------------------------

    def attach(self, netns: str, *, link: str = "ul0") -> str:
        """Wire `netns` to the underlay bridge; returns its underlay address."""
        with self._lock:
            host = self._next_host
            self._next_host += 1
        address = str(LAN.network_address + host)
        lan_end = f"ul{host}"
        self.factory.veth(left=netns, right=self.lan, left_name=link, right_name=lan_end)
        self.factory.run(["ip", "link", "set", lan_end, "master", "br0"], netns=self.lan)
        self.factory.add_address(netns=netns, link=link, address=f"{address}/{LAN.prefixlen}")
        return address

    # --- the server -----------------------------------------------------------------------

    def start(self, *, policy: dict[str, Any] | None = None) -> Headscale:
        self.factory.run(["ip", "link", "add", "br0", "type", "bridge"], netns=self.lan)
        self.factory.run(["ip", "link", "set", "br0", "up"], netns=self.lan)
        self.factory.add_address(netns=self.lan, link="br0", address=f"{CONTROL_ADDRESS}/24")
        policy_path = self.workdir / "policy.json"
        policy_path.write_text(json.dumps(policy or default_policy(), indent=2))
        self.config_path.write_text(json.dumps(self._config(policy_path), indent=2))
        argv = [peers.binary("headscale"), "serve", "--config", str(self.config_path)]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                ["ip", "netns", "exec", self.lan, *argv],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        self.forwarder = Forwarder(netns=self.lan, host=CONTROL_ADDRESS, port=CONTROL_PORT)
        _wait(
            "headscale",
            lambda: httpx.get(f"{self.forwarder.url}/health", timeout=1).status_code == 200,  # type: ignore[union-attr]
            within=30,
            process=self.process,
        )
        self.api_key = self.cli("apikeys", "create", "--expiration", "24h").strip().splitlines()[-1]
        return self

    def _config(self, policy_path: Path) -> dict[str, Any]:
        state = self.workdir / "state"
        state.mkdir(parents=True, exist_ok=True)
        return {
            "server_url": CONTROL_URL,
            "listen_addr": f"{CONTROL_ADDRESS}:{CONTROL_PORT}",
            "metrics_listen_addr": "127.0.0.1:9090",
            "grpc_listen_addr": "127.0.0.1:50443",
            "grpc_allow_insecure": False,
            "noise": {"private_key_path": str(state / "noise_private.key")},
            "prefixes": {
                "v4": "100.64.0.0/10",
                "v6": "fd7a:115c:a1e0::/48",
                "allocation": "sequential",
            },
            "derp": {
                "server": {
                    "enabled": True,
                    "region_id": 999,
                    "region_code": "test",
                    "region_name": "tailwire test DERP",
                    "verify_clients": True,
                    "stun_listen_addr": f"{CONTROL_ADDRESS}:3478",
                    "private_key_path": str(state / "derp_server_private.key"),
                    "automatically_add_embedded_derp_region": True,
                    "ipv4": CONTROL_ADDRESS,
                },
                "urls": [],
                "paths": [],
                "auto_update_enabled": False,
            },
            "disable_check_updates": True,
            # Headscale's shortest: an ephemeral device goes this long after it went offline.
            "node": {"ephemeral": {"inactivity_timeout": "66s"}},
            "database": {"type": "sqlite", "sqlite": {"path": str(state / "db.sqlite")}},
            "log": {"level": "info", "format": "text"},
            "policy": {"mode": "file", "path": str(policy_path)},
            "dns": {
                "magic_dns": True,
                "base_domain": MAGICDNS_DOMAIN,
                "override_local_dns": False,
                "nameservers": {"global": [], "split": {}},
                "search_domains": [],
                "extra_records": [],
            },
            "unix_socket": str(self.socket_path),
            "unix_socket_permission": "0770",
            "logtail": {"enabled": False},
        }

    def cli(self, *args: str, timeout: float = 30.0) -> str:
        """Run the `headscale` CLI against this server (over its unix socket)."""
        argv = [peers.binary("headscale"), "--config", str(self.config_path), *args]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        if result.returncode != 0:
            raise TailnetError(
                f"headscale {' '.join(args)}: {result.stderr.strip() or result.stdout}"
            )
        return result.stdout

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        assert self.forwarder is not None
        response = httpx.request(
            method,
            f"{self.forwarder.url}{path}",
            headers={"Authorization": f"Bearer {self.api_key}"},
            timeout=10,
            **kwargs,
        )
        if response.status_code >= 400:
            raise TailnetError(f"headscale {method} {path}: {response.status_code} {response.text}")
        return response.json()

    def preauth_key(self, *, tags: Sequence[str] = ("tag:peer",), ephemeral: bool = False) -> str:
        body = {"reusable": True, "ephemeral": ephemeral, "aclTags": list(tags),
                "expiration": "2100-01-01T00:00:00Z"}  # fmt: skip
        return str(self.api("POST", "/api/v1/preauthkey", json=body)["preAuthKey"]["key"])

    def nodes(self) -> list[Node]:
        return [Node.from_api(n) for n in self.api("GET", "/api/v1/node").get("nodes") or []]

    def node(self, hostname: str) -> Node:
        for node in self.nodes():
            if hostname in (node.name, node.given_name):
                return node
        raise TailnetError(f"headscale has no node {hostname!r}: {[n.name for n in self.nodes()]}")

    def approve_routes(self, hostname: str, routes: Sequence[str]) -> None:
        node = self.node(hostname)
        self.api("POST", f"/api/v1/node/{node.id}/approve_routes", json={"routes": list(routes)})

    def close(self) -> None:
        if self.forwarder is not None:
            self.forwarder.close()
        _stop(self.process)

    def log_tail(self, lines: int = 40) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""


def default_policy() -> dict[str, Any]:
    """Everyone reaches everyone and, through exit nodes, the "internet" (which Headscale's
    `*` does not include); the test tags are owned by the API (no user)."""
    return {
        "tagOwners": {tag: [] for tag in TAGS},
        "acls": [
            {"action": "accept", "src": ["*"], "dst": ["*:*"]},
            {"action": "accept", "src": ["*"], "dst": ["autogroup:internet:*"]},
        ],
    }


class Tailscaled:
    """One real tailscaled in `netns` with a TUN `tailscale0` and its LocalAPI in `statedir`."""

    def __init__(
        self,
        *,
        netns: str,
        statedir: Path,
        config: Path | None = None,
        authkey: str | None = None,
        name: str = "tailscaled",
        resolv_conf: str = "",
    ) -> None:
        self.resolv_conf = resolv_conf  # a gateway pod's /etc/resolv.conf (its cluster DNS)
        self.netns = netns
        self.statedir = statedir
        self.config = config
        self.authkey = authkey
        self.name = name
        self.socket = statedir / names.GATEWAY_SOCKET_FILE
        self.log_path = statedir / "tailscaled.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._overlay: Path | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def start(self) -> Tailscaled:
        self.statedir.mkdir(parents=True, exist_ok=True)
        daemon = [
            peers.binary("tailscaled"),
            "--tun=tailscale0",
            f"--statedir={self.statedir / 'state'}",
            f"--socket={self.socket}",
            "--port=41641",
            "--no-logs-no-support",
        ]
        if self.config is not None:
            daemon.append(f"--config={self.config}")
        inner = ["ip", "netns", "exec", self.netns, *daemon]
        if self.authkey is not None:
            # The gateway pod mounts its Secret at names.AUTHKEY_MOUNT and has its own
            # resolv.conf (the cluster's DNS): lay those over the host's /etc in a private
            # mount namespace. The overlay's writes (tailscaled managing resolv.conf, as it
            # does in a pod) land in the state dir, never in the host's /etc.
            self._overlay = self.statedir / "etc-overlay"
            upper, work = self.statedir / "etc-upper", self.statedir / "etc-work"
            for directory in (upper, work):
                directory.mkdir(parents=True, exist_ok=True)
            mount = self._overlay / Path(names.AUTHKEY_MOUNT).relative_to("/etc")
            mount.mkdir(parents=True, exist_ok=True)
            (mount / names.AUTHKEY_SECRET_KEY).write_text(self.authkey)
            (self._overlay / "resolv.conf").write_text(self.resolv_conf)
            script = (
                "mount -t overlay tailwire-pod-etc -o "
                f"lowerdir={self._overlay}:/etc,upperdir={upper},workdir={work} /etc"
                ' && exec "$@"'
            )
            argv = [
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                script,
                "sh",
                *inner,
            ]
        else:
            argv = inner
        env = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "TS_DEBUG_USE_DERP_HTTP": "1",
            "TS_NO_LOGS_NO_SUPPORT": "true",
            "TS_DISABLE_PORTMAPPER": "1",
            "HOME": str(self.statedir),
        }
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
            )
        _wait(f"{self.name}", lambda: self.localapi("GET", "status") is not None, within=30,
              process=self.process)  # fmt: skip
        return self

    # --- LocalAPI -------------------------------------------------------------------------

    def localapi(self, method: str, endpoint: str, **kwargs: Any) -> Any:
        # httpcore leaks the socket of a failed unix connect: probe with one we close.
        with socket.socket(socket.AF_UNIX) as probe:
            try:
                probe.connect(str(self.socket))
            except OSError as exc:
                raise TailnetError(f"{self.name} LocalAPI: {exc}") from None
        transport = httpx.HTTPTransport(uds=str(self.socket))
        with httpx.Client(transport=transport, base_url=f"http://{LOCALAPI_HOST}", timeout=10) as c:
            response = c.request(
                method, f"/localapi/v0/{endpoint}", headers={"Sec-Tailscale": "localapi"}, **kwargs
            )
        if response.status_code >= 400:
            raise TailnetError(f"{self.name} LocalAPI {method} {endpoint}: "
                               f"{response.status_code} {response.text.strip()}")  # fmt: skip
        return response.json() if response.content else {}

    def status(self) -> dict[str, Any]:
        return dict(self.localapi("GET", "status"))

    def prefs(self) -> dict[str, Any]:
        return dict(self.localapi("GET", "prefs"))

    def ips(self) -> tuple[str, ...]:
        return tuple(self.status().get("TailscaleIPs") or ())

    def ipv4(self) -> str:
        return next(ip for ip in self.ips() if ipaddress.ip_address(ip).version == 4)

    def ipv6(self) -> str:
        return next(ip for ip in self.ips() if ipaddress.ip_address(ip).version == 6)

    def cli(self, *args: str, timeout: float = 30.0) -> str:
        argv = ["ip", "netns", "exec", self.netns, peers.binary("tailscale"),
                f"--socket={self.socket}", *args]  # fmt: skip
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        if result.returncode != 0:
            raise TailnetError(f"tailscale {' '.join(args)}: {result.stderr.strip()}")
        return result.stdout

    def up(
        self, *, authkey: str, hostname: str, extra: Sequence[str] = (), timeout: float = 60.0
    ) -> None:
        """Join the tailnet as a plain device (peers; gateways use their config file)."""
        self.cli("up", f"--login-server={CONTROL_URL}", f"--auth-key={authkey}",
                 f"--hostname={hostname}", "--accept-dns=false", "--netfilter-mode=off",
                 *extra, timeout=timeout)  # fmt: skip

    def wait_running(self, *, within: float = 30.0) -> None:
        try:
            _wait(
                f"{self.name} Running",
                lambda: self.status().get("BackendState") == "Running" and bool(self.ips()),
                within=within,
                process=self.process,
            )
        except TailnetError as exc:
            raise TailnetError(f"{exc}\n--- {self.name} log\n{self.log_tail()}") from None

    def wait_peer(
        self, predicate: Callable[[dict[str, Any]], bool], *, within: float = 60.0
    ) -> dict[str, Any]:
        """Wait until a peer in the netmap satisfies `predicate`; returns it."""
        found: list[dict[str, Any]] = []

        def check() -> bool:
            for peer in (self.status().get("Peer") or {}).values():
                if predicate(peer):
                    found.append(peer)
                    return True
            return False

        _wait(f"{self.name}: peer", check, within=within, process=self.process)
        return found[0]

    def close(self) -> None:
        _stop(self.process)

    def log_tail(self, lines: int = 40) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""


class Tailnet:
    """Headscale plus the tailscaleds a test starts; `close()` stops them all (reverse order)."""

    def __init__(self, *, factory: netns_module.NetnsFactory, workdir: Path) -> None:
        self.factory = factory
        self.workdir = workdir
        self.control = Headscale(factory=factory, workdir=workdir / "headscale")
        self.daemons: list[Tailscaled] = []

    def start(self) -> Tailnet:
        (self.workdir / "headscale").mkdir(parents=True, exist_ok=True)
        self.control.start()
        return self

    def peer(
        self,
        hostname: str,
        *,
        advertise_routes: Sequence[str] = (),
        exit_node: bool = False,
        tags: Sequence[str] = ("tag:peer",),
    ) -> Tailscaled:
        """A tailnet device in its own namespace, joined, its routes approved."""
        netns = self.factory.create()
        self.control.attach(netns)
        daemon = Tailscaled(netns=netns, statedir=self.workdir / hostname, name=hostname)
        self.daemons.append(daemon)
        daemon.start()
        extra = []
        routes = list(advertise_routes) + (["0.0.0.0/0", "::/0"] if exit_node else [])
        if advertise_routes:
            extra.append(f"--advertise-routes={','.join(advertise_routes)}")
        if exit_node:
            extra.append("--advertise-exit-node")
        if routes:
            for key in ("net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"):
                self.factory.run(["sysctl", "-qw", f"{key}=1"], netns=netns)
        daemon.up(authkey=self.control.preauth_key(tags=tags), hostname=hostname, extra=extra)
        daemon.wait_running()
        if routes:
            self.control.approve_routes(hostname, routes)
        return daemon

    def gateway(
        self,
        *,
        netns: str,
        statedir: Path,
        config: Path,
        authkey: str,
        name: str,
        resolv_conf: str = "",
    ) -> Tailscaled:
        """A gateway pod's tailscaled: `netns` is the pod's, already wired by the test;
        `resolv_conf` its /etc/resolv.conf (the cluster's DNS server, as kubelet writes it)."""
        daemon = Tailscaled(
            netns=netns,
            statedir=statedir,
            config=config,
            authkey=authkey,
            name=name,
            resolv_conf=resolv_conf,
        )
        self.daemons.append(daemon)
        return daemon.start()

    def host_behind(
        self, router: Tailscaled, *, address: str, transfer: str | None = None, link: str = "lan0"
    ) -> str:
        """A plain host behind `router`, in its own namespace on a veth to it; returns the
        host's namespace. Replies to tailnet sources go back through the router (no NAT).

        Without `transfer`, `address` (a CIDR) is the host's end of the router's LAN: a subnet
        router's case. With `transfer` (a /30), the veth carries that network and the host
        holds `address` on its loopback, one hop beyond the router: an exit node's
        "internet", since tailscaled never lets exit-node users into the exit node's own
        subnets."""
        host = self.factory.create()
        self.factory.veth(left=router.netns, right=host, left_name=link, right_name="eth0")
        net = ipaddress.ip_interface(transfer or address)
        router_ip = str(net.network.network_address + 1)
        host_ip = str(net.network.network_address + 2) if transfer else str(net.ip)
        prefix = net.network.prefixlen
        self.factory.add_address(netns=router.netns, link=link, address=f"{router_ip}/{prefix}")
        self.factory.add_address(netns=host, link="eth0", address=f"{host_ip}/{prefix}")
        self.factory.run(["ip", "route", "add", "default", "via", router_ip], netns=host)
        if transfer:
            self.factory.add_address(netns=host, link="lo", address=address)
            target = str(ipaddress.ip_interface(address).network)
            self.factory.run(["ip", "route", "add", target, "via", host_ip], netns=router.netns)
        return host

    def diagnostics(self) -> str:
        parts = [f"--- headscale\n{self.control.log_tail()}"]
        parts += [f"--- {d.name}\n{d.log_tail()}" for d in self.daemons]
        return "\n".join(parts)

    def close(self) -> None:
        for daemon in reversed(self.daemons):
            daemon.close()
        self.control.close()


def tools_missing() -> str | None:
    """Which host tool the harness needs is missing (`unshare`, `ip`), or None."""
    for tool in ("unshare", "ip", "mount"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed"
    return None
