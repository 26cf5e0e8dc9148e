"""Reading the Kubernetes API: paginated lists and watch streams, as raw JSON.

Responsible for: the list and watch HTTP calls of one resource (through a kubernetes-asyncio
ApiClient, so authentication and TLS are kubectl's), decoding the JSON-lines watch stream,
and converting every foreign failure into the project's errors: `Expired` for 410 Gone (in
the HTTP status or in an ERROR event), `errors.NotFound` for a resource that is not served
(CRD not installed), `errors.AuthenticationFailed` for 401/403, and
`errors.TransientBackendError` for everything worth retrying.

Must not: write to the API, interpret objects (domain normalizes them), or retry (the
watching loop decides when to try again). Raw JSON avoids deserializing 10,000 pods into
generated models only to read a dozen fields.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncGenerator, Mapping
from typing import Any

import aiohttp
from kubernetes_asyncio import client

from tailwire.services.watcher import domain
from tailwire.shared import errors

JSON = dict[str, Any]
CONNECT_TIMEOUT = 10.0


class Expired(errors.BackendError):
    """410 Gone: the requested resourceVersion is older than the server's history."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Listing:
    items: list[JSON]
    resource_version: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class WatchEvent:
    type: str  # ADDED | MODIFIED | DELETED | BOOKMARK
    object: JSON

    @property
    def resource_version(self) -> str:
        return str((self.object.get("metadata") or {}).get("resourceVersion") or "")


class KubeReader:
    """List and watch calls over one ApiClient (the caller owns and closes it)."""

    def __init__(self, api_client: client.ApiClient) -> None:
        self.api_client = api_client

    async def _get(
        self, path: str, *, params: list[tuple[str, str]], read_timeout: float | None
    ) -> aiohttp.ClientResponse:
        what = f"GET {path}"
        try:
            response: aiohttp.ClientResponse = await self.api_client.call_api(
                path,
                "GET",
                query_params=params,
                header_params={"Accept": "application/json"},
                auth_settings=["BearerToken"],
                _preload_content=False,
                _request_timeout=aiohttp.ClientTimeout(
                    sock_connect=CONNECT_TIMEOUT, sock_read=read_timeout
                ),
            )
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise errors.TransientBackendError(f"{what}: {exc!r}") from exc
        if response.status < 300:
            return response
        try:
            body = await response.text()
        except (aiohttp.ClientError, OSError, TimeoutError):
            body = ""
        finally:
            response.release()
        raise _status_error(what, status=response.status, body=body)

    async def list(
        self,
        resource: domain.Resource,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        page_size: int = 500,
    ) -> Listing:
        """Every object, page by page; the version is the first page's (a consistent read)."""
        path = resource.path(namespace=namespace)
        items: list[JSON] = []
        resource_version = ""
        token = ""
        while True:
            params = [("limit", str(page_size))]
            if label_selector:
                params.append(("labelSelector", label_selector))
            if token:
                params.append(("continue", token))
            response = await self._get(path, params=params, read_timeout=60.0)
            try:
                document = json.loads(await response.read())
            except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
                raise errors.TransientBackendError(f"GET {path}: {exc!r}") from exc
            finally:
                response.release()
            meta = document.get("metadata") or {}
            items.extend(document.get("items") or [])
            resource_version = resource_version or str(meta.get("resourceVersion") or "")
            token = meta.get("continue") or ""
            if not token:
                return Listing(items=items, resource_version=resource_version)

    async def watch(
        self,
        resource: domain.Resource,
        *,
        resource_version: str,
        namespace: str | None = None,
        label_selector: str | None = None,
        timeout_seconds: int = 300,
    ) -> AsyncGenerator[WatchEvent, None]:
        """The events after `resource_version` until the server ends the stream."""
        path = resource.path(namespace=namespace)
        params = [
            ("watch", "true"),
            ("resourceVersion", resource_version),
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", str(timeout_seconds)),
        ]
        if label_selector:
            params.append(("labelSelector", label_selector))
        # The server sends bookmarks or ends the stream within timeoutSeconds; silence much
        # longer than that means a dead connection.
        response = await self._get(path, params=params, read_timeout=timeout_seconds + 30.0)
        try:
            while True:
                try:
                    line = await response.content.readline()
                except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
                    raise errors.TransientBackendError(f"watch {path}: {exc!r}") from exc
                if not line:
                    return
                if not line.strip():
                    continue
                try:
                    event = json.loads(line)
                    type_, obj = str(event["type"]), event["object"]
                except (ValueError, KeyError, TypeError) as exc:
                    raise errors.TransientBackendError(
                        f"watch {path}: undecodable event {line[:200]!r}"
                    ) from exc
                if type_ == "ERROR":
                    raise _status_error(
                        f"watch {path}", status=int(obj.get("code") or 500), body=json.dumps(obj)
                    )
                yield WatchEvent(type=type_, object=obj)
        finally:
            # close, not release: an unfinished stream cannot go back to the pool.
            response.close()


def _status_error(what: str, *, status: int, body: str) -> errors.BackendError:
    message = _status_message(body) or body[:200]
    text = f"{what}: {status} {message}".strip()
    if status == 410:
        return Expired(text)
    if status == 404:
        return errors.NotFound(text)
    if status in (401, 403):
        return errors.AuthenticationFailed(text)
    if status == 429 or status >= 500:
        return errors.TransientBackendError(text)
    return errors.PermanentBackendError(text)


def _status_message(body: str) -> str:
    try:
        document = json.loads(body)
    except ValueError:
        return ""
    return str(document.get("message") or "") if isinstance(document, Mapping) else ""
