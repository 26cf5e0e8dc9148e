"""Status churn does not reach the bus: a change the normalized snapshot does not show
publishes nothing; Services outside the rule are never mirrored; one that leaves the rule
gets a tombstone."""

from __future__ import annotations

import prometheus_client

from tailwire.services.watcher import config
from tailwire.shared import subjects
from tailwire.testing import kubeapi
from tests.watcher import conftest

POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "web", "namespace": "default"},
    "spec": {"nodeName": "node-a"},
    "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
}
NODE = {
    "apiVersion": "v1",
    "kind": "Node",
    "metadata": {"name": "node-a"},
    "status": {"conditions": [{"type": "Ready", "status": "True", "lastHeartbeatTime": "t0"}]},
}


def _suppressed(kind: str) -> float:
    value = prometheus_client.REGISTRY.get_sample_value(
        "tailwire_watcher_suppressed_total", {"kind": kind}
    )
    return value or 0.0


async def test_status_only_changes_publish_nothing(
    kube_emulator: kubeapi.KubeAPI,
    start_watcher: conftest.StartWatcher,
    recorder: conftest.Recorder,
) -> None:
    kube_emulator.create(POD)
    kube_emulator.create(NODE)
    settings = config.WatcherSettings(watch_kinds=[subjects.Kind.POD, subjects.Kind.NODE])
    async with start_watcher(watcher_settings=settings):
        await conftest.wait_watching(kube_emulator, "pods", "nodes")
        await recorder.wait_count(2)
        before = _suppressed("pod"), _suppressed("node")
        mark = len(recorder.messages)
        for beat in range(5):
            # kubelet churn: container statuses, conditions' timestamps, heartbeats
            kube_emulator.patch_status(
                "pods",
                name="web",
                namespace="default",
                status={
                    "conditions": [
                        {"type": "Ready", "status": "True", "lastProbeTime": f"t{beat}"}
                    ],
                    "containerStatuses": [{"name": "c", "restartCount": beat}],
                },
            )
            kube_emulator.patch_status(
                "nodes",
                name="node-a",
                status={
                    "conditions": [
                        {"type": "Ready", "status": "True", "lastHeartbeatTime": f"t{beat + 1}"}
                    ]
                },
            )
        # A real change after the churn: when it arrives, the churn has been handled.
        kube_emulator.patch_status(
            "pods", name="web", namespace="default", status={"phase": "Succeeded"}
        )
        kube_emulator.patch_status(
            "nodes", name="node-a", status={"conditions": [{"type": "Ready", "status": "False"}]}
        )
        await recorder.wait_count(mark + 2)
        assert recorder.names(mark) == [("node", "node-a", False), ("pod", "web", False)]
        assert (_suppressed("pod") - before[0], _suppressed("node") - before[1]) == (5, 5)


async def test_services_are_mirrored_by_the_rule_only(
    kube_emulator: kubeapi.KubeAPI,
    start_watcher: conftest.StartWatcher,
    recorder: conftest.Recorder,
) -> None:
    def service(name: str, **spec: object) -> dict[str, object]:
        return {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"ports": [{"port": 443}], **spec},
        }

    kube_emulator.create(service("plain"))
    kube_emulator.create(service("gw", type="LoadBalancer", loadBalancerClass="tailscale"))
    kube_emulator.create(service("gateway-internal"))
    labelled = service("labelled")
    labelled["metadata"] = {
        "name": "labelled",
        "namespace": "default",
        "labels": {"tailwire.dev/owner-kind": "tailscalegateway"},
    }
    kube_emulator.create(labelled)
    settings = config.WatcherSettings(watch_kinds=[subjects.Kind.SERVICE])
    async with start_watcher(watcher_settings=settings):
        await conftest.wait_watching(kube_emulator, "services")
        await recorder.wait_count(3)
        assert recorder.names() == [
            ("service", "gateway-internal", False),
            ("service", "gw", False),
            ("service", "labelled", False),
        ]
        mark = len(recorder.messages)
        kube_emulator.patch(
            "services",
            name="plain",
            namespace="default",
            patch={"metadata": {"labels": {"x": "y"}}},
        )
        kube_emulator.patch(
            "services", name="labelled", namespace="default", patch={"metadata": {"labels": None}}
        )
        kube_emulator.delete("services", name="plain", namespace="default")
        await recorder.wait_count(mark + 1)
        kube_emulator.patch(
            "services", name="gw", namespace="default", patch={"metadata": {"labels": {"x": "y"}}}
        )
        await recorder.wait_count(mark + 2)
        assert recorder.names(mark) == [("service", "gw", False), ("service", "labelled", True)]
