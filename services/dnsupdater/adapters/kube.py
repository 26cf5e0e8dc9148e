"""The dnsupdater's Kubernetes writes: ConfigMap data and ExternalDNS annotations.

Every write is a JSON merge patch of exactly the keys tailwire manages (ConfigMap data keys,
annotation keys), so the rest of a user's object is never rewritten. Foreign errors
(ApiException, aiohttp) become the project's exceptions here. Must not decide what to
write: callers pass the data or the patch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from tailwire.services.dnsupdater.domain import externaldns
from tailwire.shared import errors
from tailwire.shared.k8s import failures, labels

MERGE_PATCH = "application/merge-patch+json"
GATEWAY_GROUP = "gateway.networking.k8s.io"
GATEWAY_VERSION = "v1"
_PLURALS = {"HTTPRoute": "httproutes", "Gateway": "gateways"}


class KubeWriter:
    """ConfigMap data and object annotations through one ApiClient (the caller owns it)."""

    def __init__(self, *, api_client: client.ApiClient) -> None:
        self._core = client.CoreV1Api(api_client)
        self._custom = client.CustomObjectsApi(api_client)

    async def read_configmap(self, *, namespace: str, name: str) -> dict[str, str] | None:
        """The ConfigMap's data, or None if it does not exist."""
        what = f"configmap {namespace}/{name}"
        try:
            found = await self._core.read_namespaced_config_map(name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise failures.convert(exc, what=what) from None
        except aiohttp.ClientError as exc:
            raise errors.TransientBackendError(f"{what}: {type(exc).__name__}") from None
        return dict(found.data or {})

    async def write_configmap(
        self,
        *,
        namespace: str,
        name: str,
        data: Mapping[str, str | None],
        create: bool,
        component: str = "dnsupdater",
    ) -> None:
        """Merge `data` into the ConfigMap (None deletes a key); create it if `create`."""
        what = f"configmap {namespace}/{name}"
        body: dict[str, Any] = {"data": dict(data)}
        try:
            # A dict body goes as a strategic merge patch: for `data` (a plain map) it is
            # the same as a merge patch, `null` deleting a key.
            await self._core.patch_namespaced_config_map(name, namespace, body)
            return
        except ApiException as exc:
            if exc.status != 404 or not create:
                raise failures.convert(exc, what=what) from None
        except aiohttp.ClientError as exc:
            raise errors.TransientBackendError(f"{what}: {type(exc).__name__}") from None
        manifest = client.V1ConfigMap(
            api_version="v1",
            kind="ConfigMap",
            metadata=client.V1ObjectMeta(
                name=name, namespace=namespace, labels=labels.managed(component=component)
            ),
            data={k: v for k, v in data.items() if v is not None},
        )
        try:
            await self._core.create_namespaced_config_map(namespace, manifest)
        except ApiException as exc:
            raise failures.convert(exc, what=what) from None
        except aiohttp.ClientError as exc:
            raise errors.TransientBackendError(f"{what}: {type(exc).__name__}") from None

    async def patch_annotations(self, patch: externaldns.AnnotationPatch) -> None:
        """Merge-patch only the annotation keys the patch names."""
        plural = _PLURALS[patch.kind]
        what = f"{patch.kind} {patch.namespace}/{patch.name}"
        try:
            await self._custom.patch_namespaced_custom_object(
                GATEWAY_GROUP,
                GATEWAY_VERSION,
                patch.namespace,
                plural,
                patch.name,
                patch.as_merge_patch(),
                # The stubs omit `_content_type`; without it a dict goes as a JSON patch.
                _content_type=MERGE_PATCH,  # type: ignore[call-arg]
            )
        except ApiException as exc:
            raise failures.convert(exc, what=what) from None
        except aiohttp.ClientError as exc:
            raise errors.TransientBackendError(f"{what}: {type(exc).__name__}") from None
