"""The launcher's stand-in for the DaemonSet controller and the kubelet of gateway pods.

Nothing in the Kubernetes API emulator runs controllers, so when the renderer applies a
gateway DaemonSet (or labels a Node so the DaemonSet selects it) no pod would ever appear.
`GatewayKubelet` watches the emulator's commits and, for every tailwire gateway DaemonSet
and every launched node its `nodeSelector` selects, creates the gateway pod: Running, on
that node, with the template's labels, an owner reference to the DaemonSet and, when
network namespaces are in use, a fresh gateway netns (annotation `tailwire.dev/netns`) with
the sysctls the DaemonSet's privileged init container would set and a simulated tailnet peer
behind `tailscale0`. Pods (and netns) of nodes no longer selected,
or of a deleted DaemonSet, are removed.

Must not: touch pods it did not create, block the event loop with `ip` commands (they run
in a worker thread), or run when the system uses a real cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable, Mapping
from typing import Any

from tailwire.shared.k8s import labels
from tailwire.testing import kubeapi
from tailwire.testing import netns as namespaces
from tailwire.testing.kubeapi import journal

log = logging.getLogger(__name__)

JSON = dict[str, Any]
PEER_IPV4 = "100.100.0.2"
PEER_IPV6 = "fd7a:115c:a1e0::2"


@dataclasses.dataclass(frozen=True, kw_only=True)
class GatewayPod:
    group: str
    node: str
    namespace: str
    name: str
    uid: str
    netns: str | None
    peer: namespaces.TailnetPeer | None


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
    ) -> None:
        self.api = api
        self.nodes = nodes
        self.namespace = namespace
        self.factory = factory
        self.pod_ip = pod_ip
        self.pods: dict[tuple[str, str], GatewayPod] = {}  # (group, node) -> pod
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._created = asyncio.Event()
        self.errors: list[str] = []

    def start(self) -> None:
        self.api.store.on_commit.append(self._on_commit)
        self._task = asyncio.create_task(self._loop(), name="tailwire-gateway-kubelet")
        self._wake.set()

    async def stop(self) -> None:
        with contextlib.suppress(ValueError):
            self.api.store.on_commit.remove(self._on_commit)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

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
            for key, ds in sorted(wanted.items()):
                if key not in self.pods:
                    self.pods[key] = await self._create(group=key[0], node=key[1], ds=ds)
                    self._created.set()
            for key in sorted(set(self.pods) - set(wanted)):
                self._remove(self.pods.pop(key))

    async def _create(self, *, group: str, node: str, ds: JSON) -> GatewayPod:
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
        template = ds["spec"]["template"]
        pod_name = f"{ds['metadata']['name']}-{node}"[:63].rstrip("-.")
        annotations = {labels.NETNS: name_ns} if name_ns else {}
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
                    "containers": [{"name": "tailscaled", "image": "tailscale (simulated)"}],
                },
                "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]},
            }
        )
        log.info("gateway kubelet: created %s/%s on %s", self.namespace, pod_name, node)
        return GatewayPod(
            group=group,
            node=node,
            namespace=self.namespace,
            name=pod_name,
            uid=created["metadata"]["uid"],
            netns=name_ns,
            peer=peer,
        )

    def _remove(self, pod: GatewayPod) -> None:
        # Its netns stay until teardown (the factory removes them all then).
        self.api.delete("pods", name=pod.name, namespace=pod.namespace, force=True)

    async def wait_for(self, *, group: str, node: str, within: float = 10.0) -> GatewayPod:
        async with asyncio.timeout(within):
            while (group, node) not in self.pods:
                self._created.clear()
                await self._created.wait()
        return self.pods[(group, node)]
