"""The renderer's only contact with the Kubernetes API: server-side apply, pruning by label,
status and finalizer patches. kubernetes-asyncio errors become the project's own.

Responsible for: turning a manifest into its REST path, applying it with field manager
`tailwire` (force: tailwire owns what it renders) but never onto an existing object that is
not tailwire's (no `app.kubernetes.io/managed-by=tailwire`: a Service, Gateway or
GatewayClass someone else made is refused with a Conflict naming its managers, never taken
over, so never pruned either), listing what tailwire manages under a
prune scope and deleting what is no longer desired, merge-patching `/status` and finalizers.
Must not: decide what is desired (the domain does), or touch objects without the
`app.kubernetes.io/managed-by=tailwire` label when pruning.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from tailwire.services.renderer import domain
from tailwire.shared import errors
from tailwire.shared.k8s import failures, labels

log = logging.getLogger(__name__)

FIELD_MANAGER = "tailwire"
APPLY = "application/apply-patch+yaml"
MERGE = "application/merge-patch+json"

ClientFactory = Callable[[], Awaitable[client.ApiClient]]

_PLURALS = {"EnvoyProxy": "envoyproxies", "GatewayClass": "gatewayclasses"}
_CLUSTER_SCOPED = {"Node", "Namespace", "EgressGroup", "GatewayClass", "TailscaleTailnet"}
# Objects tailwire never makes but applies its own fields to (a Node's gateway label): the
# apply takes only those fields, never the object.
_LABELLED_ONLY = {"Node"}


def plural(kind: str) -> str:
    if kind in _PLURALS:
        return _PLURALS[kind]
    lower = kind.lower()
    if lower.endswith("y") and lower[-2:-1] not in ("a", "e", "i", "o", "u"):
        return lower[:-1] + "ies"  # policy -> policies, but gateway -> gateways
    if lower.endswith("s"):
        return lower + "es"
    return lower + "s"


def collection_path(*, api_version: str, kind: str, namespace: str | None) -> str:
    base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    scope = f"/namespaces/{namespace}" if namespace and kind not in _CLUSTER_SCOPED else ""
    return f"{base}{scope}/{plural(kind)}"


def object_path(manifest: domain.Manifest) -> str:
    api_version, kind, namespace, name = domain.object_key(manifest)
    path = collection_path(api_version=api_version, kind=kind, namespace=namespace or None)
    return f"{path}/{name}"


class KubeWriter:
    """Writes through one lazily created ApiClient (re-created after a connection failure)."""

    def __init__(self, *, client_factory: ClientFactory) -> None:
        self._factory = client_factory
        self._client: client.ApiClient | None = None
        # Objects known to be tailwire's (it made them, or they carry its label): applied
        # without reading them first.
        self._ours: set[tuple[str, str, str, str]] = set()

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def _call(
        self,
        method: str,
        path: str,
        *,
        what: str,
        body: Any = None,
        query: list[tuple[str, str]] | None = None,
        content_type: str | None = None,
    ) -> Any:
        try:
            if self._client is None:
                self._client = await self._factory()
            headers = {"Accept": "application/json"}
            if content_type:
                headers["Content-Type"] = content_type
            return await self._client.call_api(
                path,
                method,
                query_params=query or [],
                header_params=headers,
                body=body,
                response_types_map={200: "object", 201: "object", 202: "object"},
                auth_settings=["BearerToken"],
                _return_http_data_only=True,
            )
        except errors.ConfigurationError as exc:
            raise errors.TransientBackendError(f"{what}: {exc}") from exc
        except (TimeoutError, ApiException, aiohttp.ClientError, OSError) as exc:
            if not isinstance(exc, ApiException):
                await self.close()
            raise failures.convert(exc, what=what) from exc

    async def apply(self, manifest: domain.Manifest) -> None:
        """Server-side apply, field manager `tailwire`, taking over conflicting fields of its
        own objects only; errors.Conflict for an existing object that is not tailwire's."""
        key = domain.object_key(manifest)
        what = "apply " + "/".join(filter(None, key[1:]))
        if key not in self._ours and key[1] not in _LABELLED_ONLY:
            await self._refuse_foreign(manifest, what=what)
        query = [("fieldManager", FIELD_MANAGER), ("force", "true")]
        await self._call(
            "PATCH",
            object_path(manifest),
            what=what,
            body=manifest,
            query=query,
            content_type=APPLY,
        )
        self._ours.add(key)

    async def _refuse_foreign(self, manifest: domain.Manifest, *, what: str) -> None:
        try:
            existing = await self._call("GET", object_path(manifest), what=what)
        except errors.NotFound:
            return
        metadata = (existing or {}).get("metadata") or {}
        if (metadata.get("labels") or {}).get(labels.MANAGED_BY) == labels.MANAGED_BY_VALUE:
            return
        managers = sorted(
            {str(f.get("manager")) for f in metadata.get("managedFields") or [] if f.get("manager")}
        )
        raise errors.Conflict(
            f"{what}: the object exists and is not tailwire's (managed by "
            f"{', '.join(managers) or 'nobody recorded'}); it is not taken over"
        )

    async def list_managed(self, scope: domain.PruneScope) -> list[tuple[str, str, str, str]]:
        selector = {labels.MANAGED_BY: labels.MANAGED_BY_VALUE, **scope.labels}
        query = [("labelSelector", ",".join(f"{k}={v}" for k, v in sorted(selector.items())))]
        path = collection_path(
            api_version=scope.api_version, kind=scope.kind, namespace=scope.namespace
        )
        listing = await self._call("GET", path, what=f"list {scope.kind}", query=query)
        found = []
        for item in (listing or {}).get("items") or []:
            metadata = item.get("metadata") or {}
            item_labels = metadata.get("labels") or {}
            if item_labels.get(labels.MANAGED_BY) != labels.MANAGED_BY_VALUE:
                continue  # never prune what tailwire does not own, whatever the server says
            found.append(
                (scope.api_version, scope.kind, metadata.get("namespace") or "", metadata["name"])
            )
        return found

    async def delete(self, key: tuple[str, str, str, str]) -> None:
        api_version, kind, namespace, name = key
        path = collection_path(api_version=api_version, kind=kind, namespace=namespace or None)
        with contextlib.suppress(errors.NotFound):
            await self._call("DELETE", f"{path}/{name}", what=f"delete {kind}/{name}")
        self._ours.discard(key)

    async def patch_status(self, manifest_ref: domain.Manifest, status: dict[str, Any]) -> None:
        path = object_path(manifest_ref) + "/status"
        await self._call(
            "PATCH", path, what=f"status of {path}", body={"status": status}, content_type=MERGE
        )

    async def set_finalizers(self, manifest_ref: domain.Manifest, finalizers: list[str]) -> None:
        path = object_path(manifest_ref)
        body = {"metadata": {"finalizers": finalizers}}
        await self._call("PATCH", path, what=f"finalizers of {path}", body=body, content_type=MERGE)
