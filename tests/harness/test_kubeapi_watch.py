"""Watches through ``kubernetes_asyncio.watch.Watch``: replay, selectors, timeouts, reconnects.

The first tests are contract tests (``kube_api``); the reconnect ones pull the
emulator's levers (``kube_emulator``).
"""

from __future__ import annotations

import asyncio
from typing import Any

from kubernetes_asyncio import client, watch

from tailwire.testing import kubeapi

from .kubeapi_helpers import config_map, summary, take


def labelled(name: str, **labels: str) -> client.V1ConfigMap:
    return config_map(name, labels={"watched": "yes", **labels})


async def test_watch_from_a_resource_version_replays_what_came_after(
    kube_client: client.ApiClient, kube_namespace: str
) -> None:
    core = client.CoreV1Api(kube_client)
    before = await core.create_namespaced_config_map(kube_namespace, labelled("a"))
    await core.patch_namespaced_config_map("a", kube_namespace, {"data": {"k": "v"}})
    await core.create_namespaced_config_map(kube_namespace, labelled("b"))
    await core.delete_namespaced_config_map("a", kube_namespace)

    async with watch.Watch() as watcher:
        events = watcher.stream(
            core.list_namespaced_config_map,
            kube_namespace,
            label_selector="watched=yes",
            resource_version=before.metadata.resource_version,
        )
        replayed = await take(events, 3)
    assert summary(replayed) == [("MODIFIED", "a"), ("ADDED", "b"), ("DELETED", "a")]
    assert replayed[0]["object"].data == {"k": "v"}  # deserialised as V1ConfigMap
    versions = [int(e["raw_object"]["metadata"]["resourceVersion"]) for e in replayed]
    assert versions == sorted(versions)
    assert watcher.resource_version == replayed[-1]["raw_object"]["metadata"]["resourceVersion"]


async def test_watch_without_a_version_starts_with_the_current_objects(
    kube_client: client.ApiClient, kube_namespace: str
) -> None:
    core = client.CoreV1Api(kube_client)
    await core.create_namespaced_config_map(kube_namespace, labelled("old"))
    async with watch.Watch() as watcher:
        events = watcher.stream(
            core.list_namespaced_config_map, kube_namespace, label_selector="watched=yes"
        )
        [existing] = await take(events, 1)
        await core.create_namespaced_config_map(kube_namespace, labelled("new"))
        [live] = await take(events, 1)
    assert summary([existing, live]) == [("ADDED", "old"), ("ADDED", "new")]


async def test_an_object_leaving_the_selection_is_deleted_for_the_watcher(
    kube_client: client.ApiClient, kube_namespace: str
) -> None:
    core = client.CoreV1Api(kube_client)
    created = await core.create_namespaced_config_map(kube_namespace, labelled("cm", app="web"))
    async with watch.Watch() as watcher:
        events = watcher.stream(
            core.list_namespaced_config_map,
            kube_namespace,
            label_selector="app=web",
            resource_version=created.metadata.resource_version,
        )
        await core.patch_namespaced_config_map(
            "cm", kube_namespace, {"metadata": {"labels": {"app": "db"}}}
        )
        await core.patch_namespaced_config_map(
            "cm", kube_namespace, {"metadata": {"labels": {"app": "web"}}}
        )
        left, returned = await take(events, 2)
    assert summary([left, returned]) == [("DELETED", "cm"), ("ADDED", "cm")]


async def test_timeout_seconds_ends_the_watch(
    kube_client: client.ApiClient, kube_namespace: str
) -> None:
    core = client.CoreV1Api(kube_client)
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with watch.Watch() as watcher:
        seen = [
            event
            async for event in watcher.stream(
                core.list_namespaced_config_map,
                kube_namespace,
                label_selector="watched=yes",
                timeout_seconds=1,
            )
        ]
    assert seen == []
    assert 0.9 <= loop.time() - started < 5


async def test_a_single_object_watch_by_field_selector(
    kube_client: client.ApiClient, kube_namespace: str
) -> None:
    core = client.CoreV1Api(kube_client)
    start = await core.create_namespaced_config_map(kube_namespace, labelled("mine"))
    await core.create_namespaced_config_map(kube_namespace, labelled("other"))
    await core.patch_namespaced_config_map("mine", kube_namespace, {"data": {"k": "v"}})
    async with watch.Watch() as watcher:
        events = watcher.stream(
            core.list_namespaced_config_map,
            kube_namespace,
            field_selector="metadata.name=mine",
            resource_version=start.metadata.resource_version,
        )
        [event] = await take(events, 1)
    assert summary([event]) == [("MODIFIED", "mine")]


async def test_a_namespaced_watch_sees_only_its_namespace(kube_emulator: kubeapi.KubeAPI) -> None:
    kube_emulator.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "other"}})
    async with await kube_emulator.api_client() as api_client:
        core = client.CoreV1Api(api_client)
        async with watch.Watch() as watcher:
            # The stream requests nothing until iterated: iterate first, then write.
            pending = asyncio.create_task(
                take(watcher.stream(core.list_namespaced_config_map, "default"), 1)
            )
            await kube_emulator.wait_for_watchers("configmaps")
            for namespace in ("other", "default"):
                kube_emulator.create(manifest(namespace, namespace=namespace))
            [event] = await pending
    assert event["raw_object"]["metadata"]["namespace"] == "default"


async def test_a_dropped_connection_resumes_from_the_last_version_without_repeats(
    kube_emulator: kubeapi.KubeAPI,
) -> None:
    async with await kube_emulator.api_client() as api_client:
        core = client.CoreV1Api(api_client)
        async with watch.Watch() as watcher:
            # No timeout_seconds: kubernetes-asyncio watches "forever" and reconnects itself.
            events = watcher.stream(core.list_namespaced_config_map, "default")
            pending = asyncio.create_task(take(events, 1))
            await kube_emulator.wait_for_watchers("configmaps")
            kube_emulator.create(manifest("before"))
            first = await pending

            assert kube_emulator.disconnect_watches("configmaps") == 1
            kube_emulator.create(manifest("after"))
            second = await take(events, 1)
    assert summary(first + second) == [("ADDED", "before"), ("ADDED", "after")]
    watches = [r for r in kube_emulator.requests if r.verb == "watch"]
    assert len(watches) == 2
    resumed_from = first[0]["raw_object"]["metadata"]["resourceVersion"]
    assert watches[1].params["resourceVersion"] == resumed_from


def manifest(name: str, *, namespace: str = "default") -> dict[str, Any]:
    metadata = {"name": name, "namespace": namespace}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata}


async def test_send_initial_events_ends_the_state_with_an_annotated_bookmark(
    kube_emulator: kubeapi.KubeAPI,
) -> None:
    kube_emulator.create(manifest("existing"))
    async with await kube_emulator.api_client() as api_client, watch.Watch() as watcher:
        events = watcher.stream(
            client.CoreV1Api(api_client).list_namespaced_config_map,
            "default",
            send_initial_events=True,
            resource_version_match="NotOlderThan",
            allow_watch_bookmarks=True,
        )
        state, end = await take(events, 2)
    assert summary([state]) == [("ADDED", "existing")]
    assert end["type"] == "BOOKMARK"
    assert end["raw_object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
