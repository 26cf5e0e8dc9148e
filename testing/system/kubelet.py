"""The launcher's stand-in for the DaemonSet controller and the kubelet of gateway pods.

Nothing in the Kubernetes API emulator runs controllers, so when the renderer applies a
gateway DaemonSet (or labels a Node so the DaemonSet selects it) no pod would ever appear.
`GatewayKubelet` watches the emulator's commits and, for every tailwire gateway DaemonSet
and every launched node its `nodeSelector` selects, creates the gateway pod: Running, on
that node, with the template's labels, an owner reference to the DaemonSet and, when
network namespaces are in use, a fresh gateway netns (annotation `tailwire.dev/netns`) with
the sysctls the DaemonSet's privileged init container would set and, behind `tailscale0`:

- by default, a simulated tailnet peer (a veth named `tailscale0`, `netns.tailnet_peer`);
- with a real tailnet (`tailnet=`, a `tailwire.testing.tailnet.Tailnet`), the gateway pod's
  real tailscaled: the netns is wired to Headscale's underlay, and once the volumes the pod
  mounts have something to mount (the keyminter's authkey Secret, and the config file the
  nodeagent writes into the DaemonSet's hostPath state dir, which on this machine is that
  node's agent's state root), tailscaled starts as the container would (`--config`, the key
  at `names.AUTHKEY_MOUNT`, its socket in the state dir) and the pod is created Running once
  tailscaled is. A real DaemonSet controller creates the pod Pending at once; the stand-in
  creates it when its container is up so the nodeagent's first look at the gateway finds
  `tailscale0` (a gateway it sees without one is retried only every 10 s).

Pods (and netns) of nodes no longer selected, or of a deleted DaemonSet, are removed (a
real gateway's tailscaled is stopped then).

Must not: touch pods it did not create, block the event loop with `ip` commands or
tailscaled's start (they run in worker threads, which `stop()` waits for), or run when the
system uses a real cluster.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import logging
from collections.abc import Callable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

from tailwire.shared.k8s import labels, names
from tailwire.testing import kubeapi
from tailwire.testing import netns as namespaces
from tailwire.testing import tailnet as tailnets
from tailwire.testing.kubeapi import journal

log = logging.getLogger(__name__)

JSON = dict[str, Any]
PEER_IPV4 = "100.100.0.2"
PEER_IPV6 = "fd7a:115c:a1e0::2"
# How long a real gateway pod may wait for its volumes (the key Secret, the config file).
VOLUMES_WITHIN = 60.0
T = TypeVar("T")


@dataclasses.dataclass(frozen=True, kw_only=True)
class GatewayPod:
    group: str
    node: str
    namespace: str
    name: str
    uid: str
    netns: str | None
    peer: namespaces.TailnetPeer | None  # the simulated peer (default mode)
    daemon: tailnets.Tailscaled | None = None  # the real tailscaled (with a real tailnet)
    underlay: str | None = None  # its address on Headscale's underlay (with a real tailnet)


class GatewayKubelet:
    """Creates and removes gateway pods as a DaemonSet controller and kubelet would."""

    def __init__(
        self,
        *,
        api: kubeapi.KubeAPI,
        nodes: tuple[str, ...],
        namespace: str,
        factory: namespaces.NetnsFactory | None,
        pod_ip: Callable[[str], str],
        tailnet: tailnets.Tailnet | None = None,
        state_root: Callable[[str], Path] | None = None,
    ) -> None:
        """`tailnet`: run each gateway's real tailscaled on it (needs `factory`, the one the
        tailnet was made with, and `state_root`: node -> that node's nodeagent's gateway
        state root, where the DaemonSet's hostPath state dirs are on this machine)."""
        if tailnet is not None and (factory is None or state_root is None):
            raise ValueError("a real tailnet's gateways need the netns factory and state_root")
        self.api = api
        self.nodes = nodes
        self.namespace = namespace
        self.factory = factory
        self.pod_ip = pod_ip
        self.tailnet = tailnet
        self.state_root = state_root
        self.pods: dict[tuple[str, str], GatewayPod] = {}  # (group, node) -> pod
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._created = asyncio.Event()
        self._threads: set[asyncio.Future[Any]] = set()
        self._starting: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._failed: set[tuple[str, str]] = set()
        self.errors: list[str] = []

    def start(self) -> None:
        self.api.store.on_commit.append(self._on_commit)
        self._task = asyncio.create_task(self._loop(), name="tailwire-gateway-kubelet")
        self._wake.set()

    async def stop(self) -> None:
        with contextlib.suppress(ValueError):
            self.api.store.on_commit.remove(self._on_commit)
        tasks = [t for t in (self._task, *self._starting.values()) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        # A cancelled wait leaves its thread running (a tailscaled starting): let it finish,
        # so whatever it started is known to the tailnet, which stops it.
        pending = list(self._threads)
        if pending:
            await asyncio.wait(pending)
            for future in pending:  # retrieved, so none is reported as never retrieved
                if not future.cancelled():
                    future.exception()

    async def _in_thread(self, call: Callable[[], T]) -> T:
        future = asyncio.ensure_future(asyncio.to_thread(call))
        self._threads.add(future)
        future.add_done_callback(self._threads.discard)
        return await asyncio.shield(future)

    def _on_commit(self, event: journal.Event) -> None:
        if event.spec.kind in ("DaemonSet", "Node"):
            self._wake.set()

    async def _loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self.reconcile()
            except Exception as exc:  # keep emulating; the error is reported by the launcher
                log.exception("gateway kubelet: reconcile failed")
                self.errors.append(repr(exc))

    def _wanted(self) -> dict[tuple[str, str], JSON]:
        """(group, node) -> the DaemonSet that wants a gateway pod there."""
        node_labels = {
            n["metadata"]["name"]: (n["metadata"].get("labels") or {})
            for n in self.api.objects("nodes")
        }
        wanted: dict[tuple[str, str], JSON] = {}
        for ds in self.api.objects("daemonsets", namespace=self.namespace):
            template = (ds.get("spec") or {}).get("template") or {}
            group = ((template.get("metadata") or {}).get("labels") or {}).get(labels.EGRESS_GROUP)
            if not group or (ds["metadata"].get("deletionTimestamp")):
                continue
            selector: Mapping[str, str] = (template.get("spec") or {}).get("nodeSelector") or {}
            for node in self.nodes:
                have = node_labels.get(node, {})
                if all(have.get(k) == v for k, v in selector.items()):
                    wanted[(group, node)] = ds
        return wanted

    async def reconcile(self) -> None:
        async with self._lock:
            wanted = self._wanted()
            missing = [(key, ds) for key, ds in sorted(wanted.items()) if key not in self.pods]
            if self.tailnet is None:
                for key, ds in missing:
                    self.pods[key] = await self._create(group=key[0], node=key[1], ds=ds)
                    self._created.set()
            else:
                # A real gateway waits for its volumes and tailscaled: each in a task of its
                # own, so one gateway's wait holds up no other. One that failed is not retried.
                for key, ds in missing:
                    if key not in self._starting and key not in self._failed:
                        self._starting[key] = asyncio.create_task(
                            self._start(key, ds), name=f"tailwire-gateway-{key[0]}-{key[1]}"
                        )
            for key in sorted(set(self.pods) - set(wanted)):
                await self._remove(self.pods.pop(key))

    async def _start(self, key: tuple[str, str], ds: JSON) -> None:
        try:
            pod = await self._create(group=key[0], node=key[1], ds=ds)
        except Exception as exc:  # reported by the launcher; the other gateways go on
            log.exception("gateway kubelet: gateway %s on %s", key[0], key[1])
            self.errors.append(f"gateway {key[0]} on {key[1]}: {exc}")
            self._failed.add(key)
        else:
            self.pods[key] = pod
            self._created.set()
        finally:
            self._starting.pop(key, None)
            self._wake.set()  # removed from its DaemonSet meanwhile? the loop removes it

    async def _create(self, *, group: str, node: str, ds: JSON) -> GatewayPod:
        if self.tailnet is not None:
            return await self._create_real(group=group, node=node, ds=ds)
        name_ns: str | None = None
        peer: namespaces.TailnetPeer | None = None
        if self.factory is not None:
            factory = self.factory
            name_ns = await asyncio.to_thread(factory.create)
            # The DaemonSet's privileged init container's work: the nodeagent only checks.
            await asyncio.to_thread(factory.set_gateway_sysctls, name_ns)
            peer = await asyncio.to_thread(
                lambda: factory.tailnet_peer(
                    gateway=name_ns or "", peer_ipv4=PEER_IPV4, peer_ipv6=PEER_IPV6
                )
            )
        uid = self._create_pod(node=node, ds=ds, netns=name_ns, image="tailscale (simulated)")
        return GatewayPod(
            group=group,
            node=node,
            namespace=self.namespace,
            name=_pod_name(ds, node),
            uid=uid,
            netns=name_ns,
            peer=peer,
        )

    async def _create_real(self, *, group: str, node: str, ds: JSON) -> GatewayPod:
        """The pod sandbox and init containers (netns on the underlay, sysctls), then the
        tailscaled container once its volumes can be mounted, then the Running pod."""
        assert self.tailnet is not None
        assert self.factory is not None
        tailnet, factory = self.tailnet, self.factory
        name_ns = await self._in_thread(factory.create)
        underlay = await self._in_thread(lambda: tailnet.control.attach(name_ns))
        await self._in_thread(lambda: factory.set_gateway_sysctls(name_ns))
        state_dir = self._state_dir(ds, node)
        config = state_dir / names.GATEWAY_CONFIG_FILE
        authkey = await self._volumes(ds, config=config, what=f"{group} on {node}")
        daemon = await self._in_thread(
            lambda: tailnet.gateway(
                netns=name_ns,
                statedir=state_dir,
                config=config,
                authkey=authkey,
                name=f"gateway {group} on {node}",
            )
        )
        await self._in_thread(daemon.wait_running)
        uid = self._create_pod(node=node, ds=ds, netns=name_ns, image="tailscaled (real)")
        return GatewayPod(
            group=group,
            node=node,
            namespace=self.namespace,
            name=_pod_name(ds, node),
            uid=uid,
            netns=name_ns,
            peer=None,
            daemon=daemon,
            underlay=underlay,
        )

    def _state_dir(self, ds: JSON, node: str) -> Path:
        """The DaemonSet's hostPath state dir, on this node: under its nodeagent's state root
        instead of the host's `names.GATEWAY_STATE_ROOT`."""
        assert self.state_root is not None
        volumes = ds["spec"]["template"]["spec"].get("volumes") or []
        host_path = next(v["hostPath"]["path"] for v in volumes if v.get("name") == "state")
        relative = PurePosixPath(host_path).relative_to(names.GATEWAY_STATE_ROOT)
        return self.state_root(node) / relative

    async def _volumes(self, ds: JSON, *, config: Path, what: str) -> str:
        """Wait, as the kubelet does before it starts a container, until the authkey Secret
        exists and the nodeagent has written the config file; returns the key."""
        volumes = ds["spec"]["template"]["spec"].get("volumes") or []
        secret = next(v["secret"]["secretName"] for v in volumes if v.get("name") == "authkey")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + VOLUMES_WITHIN
        while True:
            found = self.api.get("secrets", name=secret, namespace=self.namespace)
            encoded = ((found or {}).get("data") or {}).get(names.AUTHKEY_SECRET_KEY)
            written = _has_content(config)
            if encoded and written:
                return base64.b64decode(encoded).decode()
            if loop.time() >= deadline:
                waiting = [] if encoded else [f"Secret {self.namespace}/{secret}"]
                waiting += [] if written else [f"the nodeagent's {config}"]
                raise TimeoutError(
                    f"gateway {what}: no {' and no '.join(waiting)} within {VOLUMES_WITHIN} s"
                )
            await asyncio.sleep(0.1)

    def _create_pod(self, *, node: str, ds: JSON, netns: str | None, image: str) -> str:
        template = ds["spec"]["template"]
        pod_name = _pod_name(ds, node)
        annotations = {labels.NETNS: netns} if netns else {}
        ip = self.pod_ip(node)
        created = self.api.create(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": pod_name,
                    "namespace": self.namespace,
                    "labels": dict(template["metadata"].get("labels") or {}),
                    "annotations": annotations,
                    "ownerReferences": [
                        {
                            "apiVersion": "apps/v1",
                            "kind": "DaemonSet",
                            "name": ds["metadata"]["name"],
                            "uid": ds["metadata"].get("uid", ""),
                            "controller": True,
                        }
                    ],
                },
                "spec": {
                    "nodeName": node,
                    "containers": [{"name": "tailscaled", "image": image}],
                },
                "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]},
            }
        )
        log.info("gateway kubelet: created %s/%s on %s", self.namespace, pod_name, node)
        return str(created["metadata"]["uid"])

    async def _remove(self, pod: GatewayPod) -> None:
        # Its netns stay until teardown (the factory removes them all then).
        self.api.delete("pods", name=pod.name, namespace=pod.namespace, force=True)
        if pod.daemon is not None:
            await self._in_thread(pod.daemon.close)

    async def wait_for(self, *, group: str, node: str, within: float = 10.0) -> GatewayPod:
        async with asyncio.timeout(within):
            while (group, node) not in self.pods:
                self._created.clear()
                await self._created.wait()
        return self.pods[(group, node)]


def _pod_name(ds: JSON, node: str) -> str:
    return f"{ds['metadata']['name']}-{node}"[:63].rstrip("-.")


def _has_content(path: Path) -> bool:
    with contextlib.suppress(OSError):
        return path.stat().st_size > 0
    return False
