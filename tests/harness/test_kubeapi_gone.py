"""410 Gone: what the server sends for a too-old resourceVersion, and what kubernetes-asyncio does.

The server answers HTTP 200 and puts an ERROR event with a 410 ``Expired``
Status into the stream. kubernetes-asyncio's ``Watch`` turns it into
``ApiException(status=410)``; when it watches "forever" (no
``timeout_seconds``) it first retries once, from the same version, by itself.
So a caller sees the 410 only when the version really is gone, and must then
relist: list, take the list's resourceVersion, watch from there.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import kmock
import pytest
from kubernetes_asyncio import client, watch
from kubernetes_asyncio.client.exceptions import ApiException

from tailwire.testing import kubeapi

from .kubeapi_helpers import summary, take


def config_map(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}}


async def test_the_server_sends_410_as_an_error_event_in_a_200_stream(
    kube_emulator: kubeapi.KubeAPI,
) -> None:
    old = kube_emulator.create(config_map("a"))["metadata"]["resourceVersion"]
    kube_emulator.create(config_map("b"))
    kube_emulator.expire_history()

    url = f"{kube_emulator.url}/api/v1/namespaces/default/configmaps"
    async with (
        aiohttp.ClientSession() as http,
        http.get(url, params={"watch": "true", "resourceVersion": old}) as response,
    ):
        assert response.status == 200
        lines = (await response.read()).splitlines()  # the stream ends after the error
    assert [json.loads(line) for line in lines] == [
        {
            "type": "ERROR",
            "object": {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Failure",
                "message": f"too old resource version: {old} ({kube_emulator.resource_version})",
                "reason": "Expired",
                "code": 410,
            },
        }
    ]


async def test_kubernetes_asyncio_raises_410_for_a_bounded_watch(
    kube_emulator: kubeapi.KubeAPI,
) -> None:
    old = kube_emulator.create(config_map("a"))["metadata"]["resourceVersion"]
    kube_emulator.create(config_map("b"))
    kube_emulator.expire_history()  # compacted at b's version: a's is too old to watch from
    async with await kube_emulator.api_client() as api_client, watch.Watch() as watcher:
        core = client.CoreV1Api(api_client)
        events = watcher.stream(
            core.list_namespaced_config_map, "default", resource_version=old, timeout_seconds=5
        )
        with pytest.raises(ApiException) as caught:
            await take(events, 1)
    assert caught.value.status == 410
    assert str(caught.value.reason).startswith("Expired: too old resource version")


async def test_kubernetes_asyncio_retries_one_410_by_itself(kube_emulator: kubeapi.KubeAPI) -> None:
    start = kube_emulator.create(config_map("a"))["metadata"]["resourceVersion"]
    kube_emulator.force_gone_next_watch("configmaps")  # one 410, then normal service
    async with await kube_emulator.api_client() as api_client, watch.Watch() as watcher:
        core = client.CoreV1Api(api_client)
        events = watcher.stream(core.list_namespaced_config_map, "default", resource_version=start)
        pending = asyncio.create_task(take(events, 1))
        await kube_emulator.wait_for_watchers("configmaps")
        kube_emulator.create(config_map("b"))
        seen = await pending
    assert summary(seen) == [("ADDED", "b")]
    assert [r.params["resourceVersion"] for r in kube_emulator.requests if r.verb == "watch"] == [
        start,
        start,
    ]


async def test_a_version_that_stays_gone_raises_and_a_relist_recovers(
    kube_emulator: kubeapi.KubeAPI,
) -> None:
    old = kube_emulator.create(config_map("a"))["metadata"]["resourceVersion"]
    kube_emulator.create(config_map("b"))
    kube_emulator.expire_history()
    async with await kube_emulator.api_client() as api_client:
        core = client.CoreV1Api(api_client)
        async with watch.Watch() as watcher:
            with pytest.raises(ApiException) as caught:
                await take(
                    watcher.stream(
                        core.list_namespaced_config_map, "default", resource_version=old
                    ),
                    1,
                )
        assert caught.value.status == 410  # after the client's own single retry

        # The relist: current state plus a version to watch from.
        listed = await core.list_namespaced_config_map("default")
        assert [i.metadata.name for i in listed.items] == ["a", "b"]
        async with watch.Watch() as watcher:
            events = watcher.stream(
                core.list_namespaced_config_map,
                "default",
                resource_version=listed.metadata.resource_version,
            )
            pending = asyncio.create_task(take(events, 1))
            await kube_emulator.wait_for_watchers("configmaps")
            kube_emulator.create(config_map("c"))
            assert summary(await pending) == [("ADDED", "c")]


async def test_a_kmock_reaction_can_inject_the_410(kube_emulator: kubeapi.KubeAPI) -> None:
    """kmock's DSL overrides the emulator per request: here, the first pod watch only."""
    expired = {
        "type": "ERROR",
        "object": {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": "too old resource version: 1 (2)",
            "reason": "Expired",
            "code": 410,
        },
    }
    kube_emulator.kmock[kmock.action.WATCH, kmock.resource("v1/pods")][:1] << (expired,)
    async with await kube_emulator.api_client() as api_client:
        core = client.CoreV1Api(api_client)
        async with watch.Watch() as watcher:
            with pytest.raises(ApiException) as caught:
                await take(
                    watcher.stream(
                        core.list_namespaced_pod, "default", resource_version="1", timeout_seconds=5
                    ),
                    1,
                )
        assert caught.value.status == 410
        async with watch.Watch() as watcher:  # the reaction is used up: the emulator answers
            events = watcher.stream(core.list_namespaced_pod, "default", timeout_seconds=1)
            assert [event async for event in events] == []
