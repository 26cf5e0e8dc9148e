"""Create, modify and delete of every mirrored kind produce the right snapshots, with dedup
ids and trace context (and a TTL on tombstones), against the emulated API and a real
nats-server."""

from __future__ import annotations

from typing import Any

import httpx
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tailwire.services.watcher import config
from tailwire.shared import bus, subjects, telemetry
from tailwire.shared import settings as shared_settings
from tailwire.shared.events import cluster
from tailwire.testing import kubeapi
from tests.watcher import conftest

# (resource as the emulator names it, the object, a spec/metadata change consumers must see)
OBJECTS: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    (
        "pods",
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
            "spec": {"nodeName": "node-a", "containers": [{"name": "c", "image": "i"}]},
            "status": {"phase": "Running", "podIPs": [{"ip": "10.244.0.5"}]},
        },
        {"metadata": {"labels": {"app": "web", "tier": "front"}}},
    ),
    (
        "namespaces",
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "payments"}},
        {"metadata": {"labels": {"team": "pay"}}},
    ),
    (
        "nodes",
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": "node-a"},
            "spec": {"podCIDRs": ["10.244.0.0/24"]},
            "status": {
                "addresses": [{"type": "InternalIP", "address": "192.168.1.10"}],
                "conditions": [{"type": "Ready", "status": "True"}],
            },
        },
        {"spec": {"unschedulable": True}},
    ),
    (
        "services",
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "gw-ts", "namespace": "default"},
            "spec": {
                "type": "LoadBalancer",
                "loadBalancerClass": "tailscale",
                "ports": [{"name": "https", "port": 443, "targetPort": 10443}],
            },
        },
        {"status": {"loadBalancer": {"ingress": [{"ip": "100.64.0.7"}]}}},
    ),
    (
        "gateways",
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "Gateway",
            "metadata": {"name": "tailscale", "namespace": "default"},
            "spec": {
                "gatewayClassName": "envoy",
                "listeners": [{"name": "https", "port": 443, "protocol": "HTTPS"}],
            },
        },
        {"spec": {"listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]}},
    ),
    (
        "httproutes",
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": "app", "namespace": "default"},
            "spec": {
                "parentRefs": [{"name": "tailscale"}],
                "hostnames": ["app.example.com"],
                "rules": [{"backendRefs": [{"name": "app", "port": 80}]}],
            },
        },
        {"spec": {"hostnames": ["app.example.com", "www.example.com"]}},
    ),
    (
        "egressgroups",
        {
            "apiVersion": "tailscale.rajsingh.info/v1alpha1",
            "kind": "EgressGroup",
            "metadata": {"name": "payments"},
            "spec": {"selector": {"podSelector": {"matchLabels": {"app": "pay"}}}},
        },
        {"spec": {"mode": "subnet"}},
    ),
    (
        "tailscalegateways",
        {
            "apiVersion": "gateway.tailscale.com/v1alpha1",
            "kind": "TailscaleGateway",
            "metadata": {"name": "main", "namespace": "default"},
            "spec": {"tailnets": [{"name": "corp"}]},
        },
        {"spec": {"tailnets": [{"name": "corp"}, {"name": "lab"}]}},
    ),
    (
        "tailscaletailnets",
        {
            "apiVersion": "gateway.tailscale.com/v1alpha1",
            "kind": "TailscaleTailnet",
            "metadata": {"name": "corp"},
            "spec": {"tailnet": "corp.example"},
        },
        {"spec": {"tailnet": "corp2.example"}},
    ),
]


def _latest(rec: conftest.Recorder, name: str, kind: str) -> conftest.Published:
    return [m for m in rec.messages if m.snapshot.meta.name == name and m.snapshot.kind == kind][-1]


async def test_every_kind_is_mirrored_through_create_modify_delete(
    kube_emulator: kubeapi.KubeAPI,
    start_watcher: conftest.StartWatcher,
    recorder: conftest.Recorder,
    span_exporter: InMemorySpanExporter,
) -> None:
    async with start_watcher(health_port=0) as wired:
        await conftest.wait_watching(kube_emulator, *(resource for resource, _, _ in OBJECTS))
        namespaces = len(kube_emulator.objects("namespaces"))
        await recorder.wait_count(namespaces)
        mark = len(recorder.messages)

        created = [kube_emulator.create(obj) for _, obj, _ in OBJECTS]
        await recorder.wait_count(mark + len(OBJECTS))
        kinds = {m.snapshot.kind for m in recorder.since(mark)}
        assert kinds == set(subjects.Kind)
        for (resource, _, _), obj in zip(OBJECTS, created, strict=True):
            meta = obj["metadata"]
            kind = next(
                m.snapshot.kind
                for m in recorder.since(mark)
                if m.snapshot.meta.name == meta["name"] and m.snapshot.meta.uid == meta["uid"]
            )
            message = _latest(recorder, meta["name"], kind)
            assert message.subject == subjects.cluster(message.snapshot.ref), resource
            assert message.msg_id == f"{meta['uid']}:{meta['resourceVersion']}", resource
            assert telemetry.trace_id_of(message.headers), resource

        mark = len(recorder.messages)
        for resource, obj, change in OBJECTS:
            meta = obj["metadata"]
            if "status" in change:
                kube_emulator.patch_status(
                    resource,
                    name=meta["name"],
                    namespace=meta.get("namespace"),
                    status=change["status"],
                )
            else:
                kube_emulator.patch(
                    resource, name=meta["name"], namespace=meta.get("namespace"), patch=change
                )
        await recorder.wait_count(mark + len(OBJECTS))
        modified = {m.snapshot.meta.name: m.snapshot for m in recorder.since(mark)}
        pod = modified["web"]
        assert isinstance(pod, cluster.PodSnapshot)
        assert pod.meta.labels == {"app": "web", "tier": "front"}
        assert (pod.node_name, pod.phase, pod.pod_ips) == ("node-a", "Running", ("10.244.0.5",))
        node = modified["node-a"]
        assert isinstance(node, cluster.NodeSnapshot)
        assert node.unschedulable
        assert node.ready
        assert node.internal_ips == ("192.168.1.10",)
        service = modified["gw-ts"]
        assert isinstance(service, cluster.ServiceSnapshot)
        assert service.load_balancer_ingress == (cluster.LoadBalancerIngress(ip="100.64.0.7"),)
        route = modified["app"]
        assert isinstance(route, cluster.HTTPRouteSnapshot)
        assert route.hostnames == ("app.example.com", "www.example.com")
        assert route.backend_services == ("default/app",)
        group = modified["payments"]
        assert isinstance(group, cluster.NamespaceSnapshot | cluster.EgressGroupSnapshot)

        mark = len(recorder.messages)
        for resource, obj, _ in OBJECTS:
            meta = obj["metadata"]
            kube_emulator.delete(resource, name=meta["name"], namespace=meta.get("namespace"))
        await recorder.wait_count(mark + len(OBJECTS))
        tombstones = recorder.since(mark)
        assert all(m.snapshot.deleted for m in tombstones)
        assert all(m.msg_id.endswith(":deleted") for m in tombstones)
        # Tombstones expire (the bus's tombstone_ttl), so deleted objects free their subject;
        # live snapshots never do.
        assert {m.headers.get(bus.TTL_HEADER) for m in tombstones} == {"86400s"}
        assert all(bus.TTL_HEADER not in m.headers for m in recorder.messages[:mark])
        assert {m.snapshot.kind for m in tombstones} == set(subjects.Kind)

        # One span of the watcher per published change (ended once JetStream acknowledged).
        await wired.watcher.drain()
        watcher_spans = [
            s for s in span_exporter.get_finished_spans() if s.name.startswith("watcher publish")
        ]
        assert len(watcher_spans) == len(recorder.messages)
        traces = {format(s.context.trace_id, "032x") for s in watcher_spans if s.context}
        assert {telemetry.trace_id_of(m.headers) for m in recorder.messages} == traces

        assert wired.runtime.health is not None
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{wired.runtime.health.port}") as c:
            assert (await c.get("/readyz")).status_code == 200
            text = (await c.get("/metrics")).text
        assert 'tailwire_watcher_published_total{kind="pod"}' in text
        assert "tailwire_watcher_relists_total" in text


async def test_scope_to_listed_namespaces_and_pod_label_selector(
    kube_emulator: kubeapi.KubeAPI,
    start_watcher: conftest.StartWatcher,
    recorder: conftest.Recorder,
) -> None:
    kube_emulator.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "other"}})
    for namespace in ("default", "other"):
        for name, labels in (("in", {"tailwire.dev/egress": "yes"}), ("out", {})):
            kube_emulator.create(
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": name, "namespace": namespace, "labels": labels},
                }
            )
    settings = config.WatcherSettings(
        watch_kinds=[subjects.Kind.POD, subjects.Kind.NAMESPACE],
        watch_pod_label_selector="tailwire.dev/egress=yes",
    )
    kube = shared_settings.KubernetesSettings(
        kubeconfig=str(kube_emulator.kubeconfig_path), watch_namespaces=["default"]
    )
    async with start_watcher(watcher_settings=settings, kube_settings=kube):
        await conftest.wait_watching(kube_emulator, "pods", "namespaces")
        await recorder.wait_count(2)
        kube_emulator.create(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": "late",
                    "namespace": "default",
                    "labels": {"tailwire.dev/egress": "yes"},
                },
            }
        )
        await recorder.wait_count(3)
    assert recorder.names() == [
        ("namespace", "default", False),
        ("pod", "in", False),
        ("pod", "late", False),
    ]
    assert all(m.snapshot.meta.namespace in (None, "default") for m in recorder.messages)
