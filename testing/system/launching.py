"""`System`: the running system's parts, its processes and the helpers tests drive it with.

Built and torn down by `starting.running()`; this module holds what a test does with it
(create pods, read status, plans and acks, capture the bus, kill and restart processes, ping).

Must not: be imported by services, or touch anything outside its temp dir, its own netns and
loopback ports.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from nats.aio.client import Client

from tailwire.shared.events import nodes as node_events
from tailwire.shared.k8s import labels
from tailwire.testing import bind, controlapi, kubeapi, natsserver, netns, otlp, tailnet
from tailwire.testing.system import buses, kubelet, processes

log = logging.getLogger(__name__)

JSON = dict[str, Any]
CENTRAL_SERVICES = ("watcher", "keyminter", "renderer", "dnsupdater")
GATEWAY_NAMESPACE = "tailwire-system"
TAGS = ("tag:k8s",)
CLUSTER_CIDRS = ("10.244.0.0/16", "10.96.0.0/12")
# With `Options(real_tailnet=True)`: the TailscaleTailnet seeded for the local Headscale, the
# Secret holding its API key (in GATEWAY_NAMESPACE) and the Headscale user named in it.
TAILNET = "headscale"
TAILNET_SECRET = "headscale-api-key"  # noqa: S105 (a Secret's name, not a secret)
HEADSCALE_USER = "tailwire"


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
    # Per central service ("renderer", ...), its own kubeconfig instead of `kubeconfig`: each
    # service with its own identity (a ServiceAccount token), so the cluster's RBAC applies.
    service_kubeconfigs: Mapping[str, Path] = dataclasses.field(default_factory=dict)
    # Real control-API credentials (else the local stand-in, clearly labelled).
    tailscale_client_id: str | None = None
    tailscale_client_secret: str | None = None
    tailscale_api_url: str = "https://api.tailscale.com"
    tailscale_tailnet: str = "-"
    tags: tuple[str, ...] = TAGS
    # Gateways on a real tailnet: a local Headscale (`tailwire.testing.tailnet`, seeded as the
    # TailscaleTailnet `TAILNET` with its API key in a Secret) and, per gateway pod, a real
    # tailscaled joined with the key the keyminter minted; plus a real tailnet device per
    # name in `tailnet_peers` (`s.tailnet_peers`). Needs root, netns and `make peers`.
    # Off by default: each gateway netns then gets the simulated peer (PEER_IPV4/PEER_IPV6)
    # behind a veth named tailscale0. The e2e tests, `tailwire dev` and the benchmarks keep
    # that stand-in on purpose: it needs no built peers and no control plane, a gateway is
    # ready in milliseconds instead of tailscaled's seconds of login and netmap, and its
    # fixed peer addresses let failure tests count every ping; the real gateway is proved by
    # tests/realpeers and by `tailwire demo` (tests/e2e/test_demo_runs_clean.py).
    real_tailnet: bool = False
    tailnet_peers: tuple[str, ...] = ()
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
        # With `Options(real_tailnet=True)`: Headscale and every tailscaled, and the peers.
        self.tailnet: tailnet.Tailnet | None = None
        self.tailnet_peers: dict[str, tailnet.Tailscaled] = {}
        self.processes: dict[str, processes.ServiceProcess] = {}
        self.members: dict[tuple[str, str], MemberPod] = {}
        self._ips: dict[str, int] = {}
        self.stand_in_credentials: dict[str, str] = {}
        # After teardown: each process's exit code on SIGTERM (None: it had to be killed).
        self.exit_codes: dict[str, int | None] = {}
        # After teardown: the end of the log of each process whose exit code was not 0.
        self.unclean_logs: dict[str, str] = {}

    # --- what runs ---------------------------------------------------------------------------

    @property
    def nodes(self) -> tuple[str, ...]:
        return self.options.nodes

    @property
    def local_control_api(self) -> bool:
        return self.control is not None

    def gateway_state_root(self, node: str) -> Path:
        """Where `node`'s nodeagent keeps its gateways' state (the host's
        `names.GATEWAY_STATE_ROOT` on a real node)."""
        return self.workdir / "gateways" / node

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
        """The next pod address of `node`: each node owns a /20 of 10.244.0.0/16 (4,000-odd
        pods), so a benchmark never runs out of addresses on one node."""
        index = self.nodes.index(node) if node in self.nodes else len(self.nodes)
        self._ips[node] = count = self._ips.get(node, 9) + 1
        offset = (index % 16) * 4096 + count
        return f"10.244.{offset // 256}.{offset % 256}"

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
            await asyncio.to_thread(factory.wire_cni_eth0, netns=name_ns, ip=ip)
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

    async def wait_for_stored(self, subject: str, *, within: float = 20.0) -> bytes:
        """The last message a compacted stream holds on `subject`, waiting until there is one.

        Unlike `capture`, this sees what was published before the test started looking
        (a status written while the services were still starting)."""

        async def probe() -> bytes | None:
            return await buses.last_message(self.admin, subject)

        data: bytes = await eventually(probe, within=within, what=f"a message stored on {subject}")
        return data

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
