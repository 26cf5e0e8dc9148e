"""BOOKMARK events: sent only to watches that allow them, on request and periodically."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from kubernetes_asyncio import client, watch

from tailwire.testing import kubeapi

from .kubeapi_helpers import take


def config_map(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}}


async def test_a_bookmark_carries_the_current_version_and_moves_the_client_on(
    kube_emulator: kubeapi.KubeAPI,
) -> None:
    start = kube_emulator.resource_version
    async with await kube_emulator.api_client() as api_client, watch.Watch() as watcher:
        events = watcher.stream(
            client.CoreV1Api(api_client).list_namespaced_config_map,
            "default",
            resource_version=start,
            allow_watch_bookmarks=True,
        )
        pending = asyncio.create_task(take(events, 1))
        await kube_emulator.wait_for_watchers("configmaps")
        kube_emulator.create(
            {**config_map("elsewhere"), "metadata": {"name": "x", "namespace": "kube-system"}}
        )
        assert kube_emulator.send_bookmarks("configmaps") == 1
        [bookmark] = await pending
    assert bookmark["type"] == "BOOKMARK"
    assert bookmark["raw_object"] == {
        "kind": "ConfigMap",
        "apiVersion": "v1",
        "metadata": {"resourceVersion": kube_emulator.resource_version},
    }
    # kubernetes-asyncio resumes from the bookmark after a reconnect.
    assert watcher.resource_version == kube_emulator.resource_version != start


async def test_no_bookmarks_for_a_watch_that_did_not_allow_them(
    kube_emulator: kubeapi.KubeAPI,
) -> None:
    async with await kube_emulator.api_client() as api_client, watch.Watch() as watcher:
        events = watcher.stream(client.CoreV1Api(api_client).list_namespaced_config_map, "default")
        pending = asyncio.create_task(take(events, 1))
        await kube_emulator.wait_for_watchers("configmaps")
        kube_emulator.send_bookmarks()
        kube_emulator.create(config_map("real"))
        [event] = await pending
    assert event["type"] == "ADDED"


async def test_bookmarks_come_periodically_when_allowed(tmp_path: Path) -> None:
    async with (
        kubeapi.serve(bookmark_interval=0.05, kubeconfig_path=tmp_path / "kubeconfig") as api,
        await api.api_client() as api_client,
        watch.Watch() as watcher,
    ):
        events = watcher.stream(
            client.CoreV1Api(api_client).list_namespaced_config_map,
            "default",
            resource_version=api.resource_version,
            allow_watch_bookmarks=True,
        )
        periodic = await take(events, 2)
    assert [e["type"] for e in periodic] == ["BOOKMARK", "BOOKMARK"]
