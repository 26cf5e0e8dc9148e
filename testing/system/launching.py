"""`running()`: the whole system, started in order and always torn down.

Order: temp dir -> secured nats-server -> Kubernetes API emulator (seeded) -> control-API
fake -> BIND (optional) -> OTLP receiver -> network namespaces (root) -> the central services
(which declare the streams) -> one nodeagent per node. Teardown runs in reverse from an
AsyncExitStack, so a failure anywhere (or Ctrl-C) still stops every process, removes every
netns this run created and deletes the temp dir.

Must not: be imported by services, or touch anything outside its temp dir, its own netns and
loopback ports.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

from nats.aio.client import Client

from tailwire.shared import permissions, subjects
from tailwire.shared.events import nodes as node_events
from tailwire.shared.k8s import labels
from tailwire.testing import bind, controlapi, kubeapi, natsserver, netns, otlp
from tailwire.testing.system import buses, kubelet, processes

log = logging.getLogger(__name__)

JSON = dict[str, Any]
CENTRAL_SERVICES = ("watcher", "keyminter", "renderer", "dnsupdater")
GATEWAY_NAMESPACE = "tailwire-system"
TAGS = ("tag:k8s",)
CLUSTER_CIDRS = ("10.244.0.0/16", "10.96.0.0/12")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Options:
    """What to run. The defaults make the end-to-end tests' system."""

    nodes: tuple[str, ...] = ("node-a",)
    # None: real netns when root and available; False: never; True: required.
    use_netns: bool | None = None
    # A real BIND for the dnsupdater's RFC 2136 backend, serving `dns_zones`.
    use_bind: bool = False
    dns_zones: tuple[str, ...] = ("tailnet.test",)
    # A real cluster instead of the emulator (`tailwire dev --kubeconfig`): no kubelet
    # emulation, no member pods made here.
    kubeconfig: Path | None = None
    # Real control-API credentials (else the local stand-in, clearly labelled).
    tailscale_client_id: str | None = None
    tailscale_client_secret: str | None = None
    tailscale_api_url: str = "https://api.tailscale.com"
    tailscale_tailnet: str = "-"
    tags: tuple[str, ...] = TAGS
    log_level: str = "INFO"
    # Extra TAILWIRE_* settings for every service.
    env: Mapping[str, str] = dataclasses.field(default_factory=dict)
    ready_within: float = 45.0


@dataclasses.dataclass(frozen=True, kw_only=True)
class MemberPod:
    namespace: str
    name: str
    uid: str
    node: str
    pod_ip: str
    netns: str | None
    created_at: float  # time.monotonic() just before the API create


async def eventually(
    probe: Callable[[], Any], *, within: float = 10.0, interval: float = 0.05, what: str = ""
) -> Any:
    """Await `probe()` (sync or async) until it returns something truthy; TimeoutError names
    `what` otherwise."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        value = probe()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if loop.time() >= deadline:
            raise TimeoutError(f"not within {within} s: {what or probe}")
        await asyncio.sleep(interval)


class System:
    """The running system: its parts, its processes and the helpers tests drive it with."""

    def __init__(self, *, options: Options, workdir: Path) -> None:
        self.options = options
        self.workdir = workdir
        self.nats: natsserver.NatsServer
        self.passwords: dict[str, str] = {}
        self.admin: Client
        self.kube: kubeapi.KubeAPI | None = None
        self.kubeconfig: Path
        self.control: controlapi.FakeControlAPI | None = None
        self.bind: bind.BindServer | None = None
        self.otlp: otlp.OtlpReceiver
        self.netns: netns.NetnsFactory | None = None
        self.kubelet: kubelet.GatewayKubelet | None = None
        self.processes: dict[str, processes.ServiceProcess] = {}
        self.members: dict[tuple[str, str], MemberPod] = {}
        self._ips: dict[str, int] = {}
        self._stand_in_credentials: dict[str, str] = {}
        # After teardown: each process's exit code on SIGTERM (None: it had to be killed).
        self.exit_codes: dict[str, int | None] = {}

    # --- what runs ---------------------------------------------------------------------------

    @property
    def nodes(self) -> tuple[str, ...]:
        return self.options.nodes

    @property
    def local_control_api(self) -> bool:
        return self.control is not None

    def nodeagent(self, node: str) -> processes.ServiceProcess:
        return self.processes[f"nodeagent/{node}"]

    def credentials(self, user: str) -> tuple[str, str]:
        """(user, password) of a service or `permissions.nodeagent_user(node)`."""
        return user, self.passwords[user]

    async def connect_as(self, user: str, **kwargs: Any) -> Client:
        """A raw nats-py connection with one service's (or node's) credentials."""
        import nats  # local: only some tests need a second connection

        return await nats.connect(self.nats.url, user=user, password=self.passwords[user], **kwargs)

    # --- processes ---------------------------------------------------------------------------

    async def kill(self, name: str) -> None:
        """kill -9 one service process ("renderer", "nodeagent/node-a", ...)."""
        await self.processes[name].kill()

    async def start(self, name: str, *, wait_ready: bool = True) -> None:
        process = self.processes[name]
        process.start()
        if wait_ready:
            await process.wait_ready(within=self.options.ready_within)

    async def restart(self, name: str, *, kill: bool = True, wait_ready: bool = True) -> None:
        """Restart one service: kill -9 (or SIGTERM with kill=False), then start it again."""
        process = self.processes[name]
        if kill:
            await process.kill()
        else:
            await process.stop()
        await self.start(name, wait_ready=wait_ready)

    def restart_nats(self, *, kill: bool = False) -> None:
        """Stop and start nats-server on the same port and store (services reconnect)."""
        self.nats.stop(kill=kill)
        self.nats.start()

    # --- the cluster -------------------------------------------------------------------------

    def _api(self) -> kubeapi.KubeAPI:
        if self.kube is None:
            raise RuntimeError("this helper needs the emulated Kubernetes API")
        return self.kube

    def pod_ip(self, node: str) -> str:
        index = self.nodes.index(node) if node in self.nodes else len(self.nodes)
        self._ips[node] = self._ips.get(node, 9) + 1
        return f"10.244.{index}.{self._ips[node]}"

    def create_namespace(self, name: str, *, labels_: Mapping[str, str] | None = None) -> JSON:
        api = self._api()
        existing = api.get("namespaces", name=name)
        if existing is not None:
            return existing
        all_labels = {"kubernetes.io/metadata.name": name, **(labels_ or {})}
        return api.create(
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": name, "labels": all_labels},
            }
        )

    def apply(self, manifest: Mapping[str, Any]) -> JSON:
        """Create (or merge-patch) one object in the emulated API."""
        api = self._api()
        meta = manifest.get("metadata") or {}
        spec = api.catalog.by_kind(
            api_version=str(manifest.get("apiVersion", "")), kind=str(manifest.get("kind", ""))
        )
        if spec is None:
            raise LookupError(f"not served: {manifest.get('apiVersion')} {manifest.get('kind')}")
        found = api.get(spec, name=meta["name"], namespace=meta.get("namespace"))
        if found is None:
            return api.create(manifest)
        return api.patch(spec, name=meta["name"], namespace=meta.get("namespace"), patch=manifest)

    def apply_file(self, path: Path) -> list[JSON]:
        import yaml

        return [self.apply(doc) for doc in yaml.safe_load_all(path.read_text()) if doc]

    async def create_member_pod(
        self,
        *,
        namespace: str,
        name: str,
        labels_: Mapping[str, str],
        node: str | None = None,
    ) -> MemberPod:
        """A Running pod on `node` (the first by default) with its own netns when in use:
        `eth0` holding the pod IP and the default route, as a CNI would leave it."""
        api = self._api()
        node = node or self.nodes[0]
        ip = self.pod_ip(node)
        name_ns: str | None = None
        if self.netns is not None:
            factory = self.netns
            name_ns = await asyncio.to_thread(factory.create)

            def wire_eth0() -> None:
                for argv in (
                    # No dummy driver everywhere: a veth whose peer stays in the pod.
                    ["ip", "link", "add", "eth0", "type", "veth", "peer", "name", "cni0"],
                    ["ip", "addr", "add", f"{ip}/32", "dev", "eth0"],
                    ["ip", "link", "set", "cni0", "up"],
                    ["ip", "link", "set", "eth0", "up"],
                    ["ip", "route", "add", "default", "dev", "eth0"],
                ):
                    factory.run(argv, netns=name_ns or "")

            await asyncio.to_thread(wire_eth0)
        self.create_namespace(namespace)
        created_at = time.monotonic()
        created = api.create(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": name,
                    "namespace": namespace,
                    "labels": dict(labels_),
                    "annotations": {labels.NETNS: name_ns} if name_ns else {},
                },
                "spec": {"nodeName": node, "containers": [{"name": "app", "image": "app"}]},
                "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]},
            }
        )
        member = MemberPod(
            namespace=namespace,
            name=name,
            uid=created["metadata"]["uid"],
            node=node,
            pod_ip=ip,
            netns=name_ns,
            created_at=created_at,
        )
        self.members[(namespace, name)] = member
        return member

    def delete_pod(self, *, namespace: str, name: str) -> None:
        self._api().delete("pods", name=name, namespace=namespace, force=True)
        self.members.pop((namespace, name), None)

    def group_status(self, name: str) -> JSON:
        """The EgressGroup's `.status` as the renderer wrote it ({} before it did)."""
        group = self._api().get("egressgroups", name=name)
        return dict((group or {}).get("status") or {})

    async def wait_for_group_status(
        self, name: str, predicate: Callable[[JSON], bool], *, within: float = 20.0
    ) -> JSON:
        status: JSON = await eventually(
            lambda: (s := self.group_status(name)) and predicate(s) and s,
            within=within,
            what=f"EgressGroup {name} status",
        )
        return status

    # --- the bus -----------------------------------------------------------------------------

    def capture(self) -> contextlib.AbstractAsyncContextManager[buses.Capture]:
        """`async with system.capture() as seen:` every tailwire message from now on."""
        return buses.capturing(self.admin)

    async def last_ack(self, node: str) -> node_events.NodeAck | None:
        return await buses.last_ack(self.admin, node)

    async def last_plan(self, node: str) -> node_events.NodePlan | None:
        return await buses.last_plan(self.admin, node)

    async def wait_for_ack(
        self, *, node: str, pod_uid: str, ok: bool | None = True, within: float = 20.0
    ) -> node_events.NodeAck:
        """The first ack of `node` whose results include `pod_uid`: applied (ok=True), failed
        (ok=False) or either (ok=None: without netns, a pod's netns cannot be found)."""

        async def probe() -> node_events.NodeAck | None:
            ack = await self.last_ack(node)
            if ack is None:
                return None
            hit = any(p.pod_uid == pod_uid and ok in (None, p.ok) for p in ack.pods)
            return ack if hit else None

        ack: node_events.NodeAck = await eventually(
            probe, within=within, what=f"ack of {node} containing pod {pod_uid}"
        )
        return ack

    # --- the datapath ------------------------------------------------------------------------

    def ping(self, member: MemberPod, *, address: str = kubelet.PEER_IPV4, count: int = 1) -> bool:
        """A real ping from the member's netns (root only)."""
        if self.netns is None or member.netns is None:
            raise RuntimeError("no network namespaces in this system (not root?)")
        return self.netns.ping(netns=member.netns, address=address, count=count)

    # --- start-up ----------------------------------------------------------------------------

    def service_env(self, *, user: str) -> dict[str, str]:
        opts = self.options
        env = processes.base_environment()
        env.update(
            {
                "TAILWIRE_NATS_URL": self.nats.url,
                "TAILWIRE_NATS_USER": user,
                "TAILWIRE_NATS_PASSWORD": self.passwords[user],
                "KUBECONFIG": str(self.kubeconfig),
                "TAILWIRE_KUBECONFIG": str(self.kubeconfig),
                "TAILWIRE_NAMESPACE": GATEWAY_NAMESPACE,
                "TAILWIRE_CLUSTER_CIDRS": ",".join(CLUSTER_CIDRS),
                "TAILWIRE_LOG_LEVEL": opts.log_level,
                "TAILWIRE_TRACES_EXPORTER": "otlp",
                "OTEL_EXPORTER_OTLP_ENDPOINT": self.otlp.url,
                "OTEL_BSP_SCHEDULE_DELAY": "100",
                "TAILWIRE_TAILSCALE_TAILNET": opts.tailscale_tailnet,
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(self._tailscale_env())
        if self.bind is not None:
            env.update(
                {
                    "TAILWIRE_DNS_ZONES": json.dumps(
                        [{"zone": z, "backends": ["rfc2136"]} for z in self.bind.zones]
                    ),
                    "TAILWIRE_DNS_RFC2136_SERVER": self.bind.host,
                    "TAILWIRE_DNS_RFC2136_PORT": str(self.bind.port),
                    "TAILWIRE_DNS_TSIG_KEY_NAME": self.bind.key_name,
                    "TAILWIRE_DNS_TSIG_ALGORITHM": self.bind.key_algorithm,
                    "TAILWIRE_DNS_TSIG_SECRET": self.bind.key_secret,
                }
            )
        env.update(opts.env)
        return env

    def _tailscale_env(self) -> dict[str, str]:
        opts = self.options
        if self.control is not None:
            return dict(self._stand_in_credentials, TAILWIRE_TAILSCALE_API_URL=self.control.url)
        return {
            "TAILWIRE_TAILSCALE_API_URL": opts.tailscale_api_url,
            "TAILWIRE_TAILSCALE_OAUTH_CLIENT_ID": opts.tailscale_client_id or "",
            "TAILWIRE_TAILSCALE_OAUTH_CLIENT_SECRET": opts.tailscale_client_secret or "",
        }

    def _make_processes(self) -> None:
        logs = self.workdir / "logs"
        logs.mkdir(exist_ok=True)
        for service in CENTRAL_SERVICES:
            self.processes[service] = processes.ServiceProcess.for_service(
                service=service,
                node=None,
                env=self.service_env(user=service),
                health_port=natsserver.free_port(),
                log_dir=logs,
            )
        for node in self.nodes:
            env = self.service_env(user=permissions.nodeagent_user(node))
            state = self.workdir / "gateways" / node
            state.mkdir(parents=True, exist_ok=True)
            env["TAILWIRE_GATEWAY_STATE_ROOT"] = str(state)
            process = processes.ServiceProcess.for_service(
                service="nodeagent",
                node=node,
                env=env,
                health_port=natsserver.free_port(),
                log_dir=logs,
            )
            self.processes[process.name] = process

    async def _start_all(self) -> None:
        central = [self.processes[s] for s in CENTRAL_SERVICES]
        for process in central:
            process.start()
        # Central services declare the streams; a confined nodeagent may not.
        await asyncio.gather(*(p.wait_ready(within=self.options.ready_within) for p in central))
        agents = [self.processes[f"nodeagent/{n}"] for n in self.nodes]
        for process in agents:
            process.start()
        await asyncio.gather(*(p.wait_ready(within=self.options.ready_within) for p in agents))

    async def _stop_all(self) -> None:
        codes = await asyncio.gather(*(p.stop() for p in self.processes.values()))
        self.exit_codes = dict(zip(self.processes, codes, strict=True))


class SessionNatsServer(natsserver.NatsServer):
    """nats-server in its own session, dying with the launcher: a Ctrl-C at the terminal
    reaches the launcher only, which stops the services first and NATS last."""

    def start(self, *, timeout: float = 10.0) -> None:
        if self.process is not None:
            return
        self.store_dir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            self._command(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=processes.die_with_parent,
        )
        self._wait_ready(timeout=timeout)


def _seed_cluster(system: System, api: kubeapi.KubeAPI) -> None:
    system.create_namespace(GATEWAY_NAMESPACE)
    for index, node in enumerate(system.nodes):
        api.create(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": node,
                    "labels": {"kubernetes.io/hostname": node, "kubernetes.io/os": "linux"},
                },
                "status": {
                    "addresses": [{"type": "InternalIP", "address": f"192.168.77.{index + 10}"}],
                    "conditions": [{"type": "Ready", "status": "True"}],
                },
            }
        )


def _netns_wanted(option: bool | None) -> bool:
    reason = netns.unavailable_reason() if option is not False else None
    if option is True and reason is not None:
        raise RuntimeError(f"network namespaces were required: {reason}")
    return option is not False and reason is None


@contextlib.asynccontextmanager
async def running(options: Options | None = None) -> AsyncIterator[System]:
    """Start the whole system; yield it; always tear everything down."""
    options = options or Options()
    workdir = Path(tempfile.mkdtemp(prefix="tailwire-system-"))
    system = System(options=options, workdir=workdir)
    async with contextlib.AsyncExitStack() as stack:
        stack.callback(shutil.rmtree, workdir, True)
        # NATS: one user per service and per node, random passwords, plus the test admin.
        users = [str(s) for s in subjects.Service if s is not subjects.Service.NODEAGENT]
        users += [permissions.nodeagent_user(n) for n in options.nodes]
        system.passwords = {u: secrets.token_urlsafe(18) for u in users}
        admin_password = secrets.token_urlsafe(18)
        port = natsserver.free_port()
        config = permissions.render_nats_config(
            passwords=system.passwords,
            nodes=options.nodes,
            listen=f"127.0.0.1:{port}",
            store_dir=str(workdir / "nats" / "jetstream"),
        )
        system.nats = SessionNatsServer(
            store_dir=workdir / "nats",
            port=port,
            config_text=buses.with_admin(config, password=admin_password),
        )
        system.nats.start()
        stack.callback(system.nats.stop)
        system.admin = await buses.connect(
            system.nats.url, user=buses.ADMIN_USER, password=admin_password
        )
        stack.push_async_callback(system.admin.close)

        if options.kubeconfig is None:
            system.kube = await stack.enter_async_context(
                kubeapi.serve(kubeconfig_path=workdir / "kubeconfig", request_log_limit=200)
            )
            system.kubeconfig = system.kube.kubeconfig_path
            _seed_cluster(system, system.kube)
        else:
            system.kubeconfig = options.kubeconfig

        if options.tailscale_client_id and options.tailscale_client_secret:
            system._stand_in_credentials = {}
        else:
            system.control = await stack.enter_async_context(controlapi.serve())
            client = system.control.add_oauth_client(
                scopes=["auth_keys", "devices:core", "dns"], tags=list(options.tags)
            )
            system._stand_in_credentials = {
                "TAILWIRE_TAILSCALE_OAUTH_CLIENT_ID": client.client_id,
                "TAILWIRE_TAILSCALE_OAUTH_CLIENT_SECRET": client.client_secret,
            }

        if options.use_bind:
            system.bind = stack.enter_context(bind.running(zones=options.dns_zones))
        system.otlp = await stack.enter_async_context(otlp.serve())

        if system.kube is not None and _netns_wanted(options.use_netns):
            system.netns = stack.enter_context(netns.NetnsFactory())
        if system.kube is not None:
            system.kubelet = kubelet.GatewayKubelet(
                api=system.kube,
                nodes=options.nodes,
                namespace=GATEWAY_NAMESPACE,
                factory=system.netns,
                pod_ip=system.pod_ip,
            )
            system.kubelet.start()
            stack.push_async_callback(system.kubelet.stop)

        system._make_processes()
        stack.push_async_callback(system._stop_all)
        await system._start_all()
        log.info("tailwire system running in %s (pid %d)", workdir, os.getpid())
        yield system
