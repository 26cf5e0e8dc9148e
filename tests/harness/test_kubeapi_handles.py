"""The test's side of the emulator: kubeconfig, direct reads and writes, the request log, kmock."""

from __future__ import annotations

import asyncio

import kmock
import pytest
import yaml
from kubernetes_asyncio import client, watch
from kubernetes_asyncio.client.exceptions import ApiException

from tailwire.testing import kubeapi

from .kubeapi_helpers import status_of, summary, take

POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "p", "labels": {"app": "web"}},
    "spec": {"nodeName": "node-a", "containers": [{"name": "c", "image": "busybox"}]},
    "status": {"phase": "Running"},
}


async def test_the_kubeconfig_points_at_the_server_without_credentials(
    kube_emulator: kubeapi.KubeAPI,
) -> None:
    config = yaml.safe_load(kube_emulator.kubeconfig_path.read_text())
    [cluster] = config["clusters"]
    assert cluster["cluster"] == {"server": kube_emulator.url}
    assert kube_emulator.url.startswith("http://127.0.0.1:")
    copy = kube_emulator.kubeconfig(kube_emulator.kubeconfig_path.with_name("copy"))
    assert yaml.safe_load(copy.read_text()) == config
    async with await kubeapi.new_api_client(copy) as api_client:
        namespaces = await client.CoreV1Api(api_client).list_namespace()
    assert [n.metadata.name for n in namespaces.items] == [
        "default",
        "kube-node-lease",
        "kube-public",
        "kube-system",
    ]


async def test_direct_writes_keep_status_and_are_seen_by_watchers(
    kube_emulator: kubeapi.KubeAPI,
) -> None:
    async with await kube_emulator.api_client() as api_client, watch.Watch() as watcher:
        events = watcher.stream(client.CoreV1Api(api_client).list_pod_for_all_namespaces)
        pending = asyncio.create_task(take(events, 4))
        await kube_emulator.wait_for_watchers("pods")

        created = kube_emulator.create(POD)
        assert created["metadata"]["namespace"] == "default"
        assert created["status"] == {"phase": "Running"}  # kept: as if the kubelet wrote it
        kube_emulator.patch(
            "pods", name="p", namespace="default", patch={"metadata": {"labels": {"b": "c"}}}
        )
        patched = kube_emulator.patch_status(
            "pods", name="p", namespace="default", status={"podIP": "10.0.0.7"}
        )
        assert patched["status"] == {"phase": "Running", "podIP": "10.0.0.7"}
        assert kube_emulator.delete("pods", name="p", namespace="default") is None
        seen = await pending
    assert summary(seen) == [("ADDED", "p"), ("MODIFIED", "p"), ("MODIFIED", "p"), ("DELETED", "p")]
    assert kube_emulator.get("pods", name="p", namespace="default") is None
    assert kube_emulator.objects("pods") == []


async def test_the_request_log_shows_the_absence_of_cluster_wide_lists(
    kube_emulator: kubeapi.KubeAPI,
) -> None:
    kube_emulator.create(POD)
    async with await kube_emulator.api_client() as api_client:
        core = client.CoreV1Api(api_client)
        await core.list_namespaced_pod("default", field_selector="spec.nodeName=node-a")
        await core.read_namespaced_pod("p", "default")
    requests = kube_emulator.requests
    assert [(r.verb, r.resource, r.namespace, r.name) for r in requests] == [
        ("list", "pods", "default", None),
        ("get", "pods", "default", "p"),
    ]
    assert requests[0].params == {"fieldSelector": "spec.nodeName=node-a"}
    assert requests[0].user_agent.startswith("OpenAPI-Generator/")
    cluster_wide_pod_lists = [
        r for r in requests if (r.verb, r.resource, r.namespace) == ("list", "pods", None)
    ]
    assert cluster_wide_pod_lists == []


async def test_a_kmock_reaction_overrides_one_request_then_the_emulator_answers(
    kube_emulator: kubeapi.KubeAPI,
) -> None:
    unavailable = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "etcdserver: leader changed",
        "reason": "ServiceUnavailable",
        "code": 503,
    }
    (
        kube_emulator.kmock[kmock.action.LIST, kmock.resource("v1/configmaps")][:1]
        << 503
        << unavailable
    )
    async with await kube_emulator.api_client() as api_client:
        core = client.CoreV1Api(api_client)
        with pytest.raises(ApiException) as caught:
            await core.list_namespaced_config_map("default")
        assert caught.value.status == 503
        assert status_of(caught.value)["reason"] == "ServiceUnavailable"
        listed = await core.list_namespaced_config_map("default")
    assert listed.items == []
    assert len(kube_emulator.requests) == 2


async def test_waiting_for_a_watcher_that_never_comes_times_out(
    kube_emulator: kubeapi.KubeAPI,
) -> None:
    with pytest.raises(TimeoutError):
        await kube_emulator.wait_for_watchers("pods", within=0.05)


async def test_unknown_resources_and_kinds_are_named_in_the_error(
    kube_emulator: kubeapi.KubeAPI,
) -> None:
    with pytest.raises(LookupError):
        kube_emulator.create({"apiVersion": "example.com/v1", "kind": "Nothing"})
    with pytest.raises(LookupError):
        kube_emulator.objects("nothings")


async def test_pages_across_namespaces_follow_the_storage_key_order(
    kube_emulator: kubeapi.KubeAPI,
) -> None:
    for namespace in ("a", "a-x"):
        kube_emulator.create(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
        )
        for name in ("b", "a"):
            metadata = {"name": name, "namespace": namespace}
            kube_emulator.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata})
    async with await kube_emulator.api_client() as api_client:
        core = client.CoreV1Api(api_client)
        page = await core.list_config_map_for_all_namespaces(limit=3)
        seen = [(i.metadata.namespace, i.metadata.name) for i in page.items]
        while page.metadata._continue:
            page = await core.list_config_map_for_all_namespaces(
                limit=3, _continue=page.metadata._continue
            )
            seen += [(i.metadata.namespace, i.metadata.name) for i in page.items]
    assert seen == [("a", "a"), ("a", "b"), ("a-x", "a"), ("a-x", "b")]


async def test_direct_access_defaults_to_the_default_namespace(
    kube_emulator: kubeapi.KubeAPI,
) -> None:
    kube_emulator.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}})
    found = kube_emulator.get("configmaps", name="cm")
    assert found is not None
    assert found["metadata"]["namespace"] == "default"
    assert kube_emulator.get("namespaces", name="default") is not None
