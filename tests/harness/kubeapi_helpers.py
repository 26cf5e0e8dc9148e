"""Small helpers shared by the kubeapi tests: Status bodies, raw responses, watch events."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

JSON = dict[str, Any]


MERGE = "application/merge-patch+json"
APPLY = "application/apply-patch+yaml"


def content_type(value: str) -> dict[str, Any]:
    """``_content_type=...`` for a call: kubernetes-asyncio takes it, its stubs omit it."""
    return {"_content_type": value}


def status_of(error: ApiException) -> JSON:
    """The Status object the server answered a failure with."""
    body: JSON = json.loads(error.body or b"{}")
    return body


async def raw_json(response: Any) -> JSON:
    """The decoded body of a call made with ``_preload_content=False``."""
    async with response:
        body: JSON = json.loads(await response.read())
        return body


async def take(events: AsyncIterator[JSON], count: int, *, within: float = 5.0) -> list[JSON]:
    """The next ``count`` watch events, failing (not hanging) if they do not come."""
    taken: list[JSON] = []
    async with asyncio.timeout(within):
        async for event in events:
            taken.append(event)
            if len(taken) == count:
                break
    return taken


def summary(events: list[JSON]) -> list[tuple[str, str]]:
    """(type, name) per event, for readable assertions."""
    return [(e["type"], e["raw_object"]["metadata"].get("name", "")) for e in events]


def config_map(
    name: str | None = None,
    *,
    labels: dict[str, str] | None = None,
    data: dict[str, str] | None = None,
    finalizers: list[str] | None = None,
    generate_name: str | None = None,
) -> client.V1ConfigMap:
    metadata = client.V1ObjectMeta(
        name=name, labels=labels, finalizers=finalizers, generate_name=generate_name
    )
    return client.V1ConfigMap(metadata=metadata, data=data)


def pod(name: str, *, node: str) -> client.V1Pod:
    container = client.V1Container(name="c", image="busybox")
    spec = client.V1PodSpec(node_name=node, containers=[container])
    return client.V1Pod(metadata=client.V1ObjectMeta(name=name), spec=spec)
