"""The HTTP face of the emulator: a kmock handler that serves the Kubernetes API.

Responsible for: turning requests into storage calls and answers into the
real server's shapes: ``201`` on create, ``<Kind>List`` with
``metadata.resourceVersion`` (and ``limit``/``continue`` pages), JSON-lines
watch streams, ``Status`` bodies for failures, the patch content types the
server accepts per resource (strategic merge patch is refused with 415 on
custom resources, as on a cluster), ``fieldManager``/``force`` for apply.

It is a :class:`kmock.RawHandler`: every request is logged in kmock and a
test's reactions get the first word (``api.kmock[kmock.method.GET,
kmock.resource("v1/pods")] << 410``); only a request no reaction takes is
answered by the emulator. Two kmock 0.8 gaps are worked around here: its
path parser fails on ``/api/v1/namespaces`` and misreads ``watch=True``, so
the kmock requests are built by :mod:`.routing`; and its ``Response``
payloads carry one answer's status and headers into the next, so the
emulator answers with plain aiohttp responses.

Must not: keep state of its own (storage does), or run the TCP server
(serving does).
"""

from __future__ import annotations

import base64
import binascii
import contextvars
import dataclasses
import json
from collections.abc import Mapping
from typing import Any

import aiohttp.web
import attrs
import kmock
import yaml

from . import discovery, resources, routing, selectors, statuses, storage, watching
from . import tokens as tokens_module

JSON = dict[str, Any]

MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY = "application/apply-patch+yaml"
PATCH_TYPES = {JSON_PATCH: "json", MERGE: "merge", STRATEGIC: "strategic", APPLY: "apply"}


# The aiohttp request behind the kmock one, for streaming (a watch needs the raw response).
_RAW_REQUEST: contextvars.ContextVar[aiohttp.web.BaseRequest] = contextvars.ContextVar("raw")


@dataclasses.dataclass(frozen=True)
class Reply:
    status: int
    body: JSON


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))  # compact, as the Go encoder writes


@attrs.define(kw_only=True)
class Handler(kmock.RawHandler):
    store: storage.Store
    tokens: tokens_module.Tokens = attrs.field(factory=tokens_module.Tokens)
    bookmark_interval: float = 60.0
    request_log_limit: int | None = None  # keep only the last N (a long `tailwire dev`)
    _served: int = attrs.field(default=0, init=False)

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        # RawHandler.__call__ without its parser (see the module docstring); the request
        # log and error list are kmock's own, so its DSL and assertions keep working.
        _RAW_REQUEST.set(raw_request)  # each request runs in its own task: its own context
        try:
            request = await routing.kmock_request(raw_request, number=self._served)
            self._served += 1
            self._requests.append(request)
            if self.request_log_limit is not None:
                del self._requests[: -self.request_log_limit or None]
            return await self._handle(request)
        except Exception as e:
            if not self._errors:  # outside ``async with handler``: let the server see it
                raise
            self._errors[-1].append(e)
            return await self._render_error(e)

    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        try:
            return await super()._handle(request)  # a test's reactions, if any matches
        except NotImplementedError:
            pass  # none did: the emulator answers
        try:
            answer = self._serve(request)
        except statuses.StatusError as e:
            return aiohttp.web.json_response(e.status, status=e.code, dumps=_dumps)
        match answer:
            case watching.WatchRequest():
                return await self._stream(answer)
            case Reply():
                return aiohttp.web.json_response(answer.body, status=answer.status, dumps=_dumps)
            case bytes():
                return aiohttp.web.Response(body=answer, content_type="text/plain")
            case _:
                return aiohttp.web.json_response(answer, dumps=_dumps)

    async def _stream(self, request: watching.WatchRequest) -> aiohttp.web.StreamResponse:
        response = aiohttp.web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(_RAW_REQUEST.get())  # headers now: clients wait for them
        events = watching.stream(self.store, request, bookmark_interval=self.bookmark_interval)
        try:
            async for event in events:
                await response.write(_dumps(event).encode() + b"\n")
            await response.write_eof()
        except ConnectionError:
            pass  # the client hung up; its subscription ends with the generator
        finally:
            await events.aclose()
        return response

    async def _render_error(self, exc: Exception) -> aiohttp.web.StreamResponse:
        # A bug in the emulator (or an exception fed to a reaction) still answers a Status.
        if isinstance(exc, kmock.KubernetesError):
            error = statuses.StatusError(
                code=exc.status,
                reason=exc.reason or type(exc).__name__,
                message=exc.message or repr(exc),
            )
        else:
            error = statuses.internal(repr(exc))
        return aiohttp.web.json_response(error.status, status=error.code, dumps=_dumps)

    def _serve(self, request: kmock.Request) -> JSON | Reply | bytes | watching.WatchRequest:
        route = routing.parse(request.url.path)
        if (route.group, route.plural, request.method) == (
            "authentication.k8s.io",
            "tokenreviews",
            "POST",
        ):
            body = _decode(request, accepted=("application/json",))
            return Reply(201, self.tokens.review(body))
        if route.kind == "resource":
            return self._serve_resource(request, route)
        if request.method != "GET":
            raise statuses.method_not_allowed(request.method.value)
        catalog = self.store.catalog
        document: JSON | None
        match route.kind:
            case "health":
                return b"ok"
            case "version":
                document = discovery.SERVER_VERSION
            case "api":
                document = discovery.api_versions()
            case "apis":
                document = discovery.group_list(catalog)
            case "group":
                document = discovery.group(catalog, route.group)
            case "groupversion":
                document = discovery.resource_list(
                    catalog, group=route.group, version=route.version
                )
            case _:
                document = None
        if document is None:
            raise statuses.no_such_resource()
        return document

    def _serve_resource(
        self, request: kmock.Request, route: routing.Route
    ) -> JSON | Reply | watching.WatchRequest:
        spec = self.store.catalog.lookup(
            group=route.group, version=route.version, plural=route.plural or ""
        )
        if (
            spec is None
            or (route.namespace is not None and not spec.namespaced)
            or (route.name is not None and spec.namespaced and route.namespace is None)
            or (
                route.subresource is not None and (route.subresource != "status" or not spec.status)
            )
        ):
            raise statuses.no_such_resource()
        params = request.params
        if params.get("dryRun"):
            raise statuses.bad_request("dryRun is not supported by the tailwire kubeapi emulator")
        verb = routing.verb(request.method.value, route, params)
        manager = params.get("fieldManager") or _user_agent(request).split("/")[0] or "unknown"
        store, ns, name, sub = self.store, route.namespace, route.name or "", route.subresource
        match verb:
            case "list":
                return self._list(spec, route, params)
            case "watch":
                return self._watch(spec, route, params)
            case "get":
                return store.get(spec, namespace=ns, name=name)
            case "create" if ns is not None or not spec.namespaced:
                body = _decode(request, accepted=("application/json",))
                return Reply(201, store.create(spec, body, namespace=ns, manager=manager))
            case "update":
                body = _decode(request, accepted=("application/json",))
                return store.replace(
                    spec, body, namespace=ns, name=name, subresource=sub, manager=manager
                )
            case "patch":
                return self._patch(request, spec, route, manager=manager)
            case "delete":
                options = _decode(request, accepted=("application/json",), optional=True) or {}
                return store.delete(
                    spec, namespace=ns, name=name, preconditions=options.get("preconditions")
                )
            case "deletecollection":
                deleted = [
                    store.delete(
                        spec,
                        namespace=obj["metadata"].get("namespace"),
                        name=obj["metadata"]["name"],
                    )
                    for obj in self._select(spec, route, params)
                ]
                return self._list_document(spec, deleted, params={})
        raise statuses.method_not_allowed(request.method.value)

    def _select(
        self, spec: resources.ResourceSpec, route: routing.Route, params: Mapping[str, str]
    ) -> list[JSON]:
        return self.store.select(
            spec,
            namespace=route.namespace,
            labels=selectors.parse_labels(params.get("labelSelector")),
            fields=selectors.parse_fields(
                params.get("fieldSelector"), allowed=spec.selectable_fields
            ),
        )

    def _list(
        self, spec: resources.ResourceSpec, route: routing.Route, params: Mapping[str, str]
    ) -> JSON:
        return self._list_document(spec, self._select(spec, route, params), params=params)

    def _list_document(
        self, spec: resources.ResourceSpec, items: list[JSON], *, params: Mapping[str, str]
    ) -> JSON:
        resource_version = str(self.store.resource_version)
        meta: JSON = {"resourceVersion": resource_version}
        if token := params.get("continue"):
            start, resource_version = _decode_continue(token)
            items = [i for i in items if _key(i) > start]
            meta["resourceVersion"] = resource_version
        limit = _number(params, "limit") or 0
        if limit and len(items) > limit:
            meta["continue"] = _encode_continue(_key(items[limit - 1]), resource_version)
            meta["remainingItemCount"] = len(items) - limit
            items = items[:limit]
        if not spec.custom:
            # Built-in lists carry no apiVersion/kind on their items; custom resource lists do.
            items = [{k: v for k, v in i.items() if k not in ("apiVersion", "kind")} for i in items]
        return {
            "apiVersion": spec.api_version,
            "kind": spec.list_kind,
            "metadata": meta,
            "items": items,
        }

    def _watch(
        self, spec: resources.ResourceSpec, route: routing.Route, params: Mapping[str, str]
    ) -> watching.WatchRequest:
        fields = selectors.parse_fields(params.get("fieldSelector"), allowed=spec.selectable_fields)
        since_rv = _number(params, "resourceVersion")
        initial_events = routing.truthy(params.get("sendInitialEvents"))
        if initial_events:
            # The watch-list protocol: state first (as "not older than" the version), then a
            # bookmark marking its end; the server insists on the parameters that make it so.
            if params.get("resourceVersionMatch") != "NotOlderThan":
                raise statuses.bad_request(
                    "sendInitialEvents requires resourceVersionMatch=NotOlderThan"
                )
            if not routing.truthy(params.get("allowWatchBookmarks")):
                raise statuses.bad_request("sendInitialEvents requires allowWatchBookmarks=true")
            since_rv = None
        request = watching.WatchRequest(
            spec=spec,
            namespace=route.namespace,
            name=route.name,
            labels=selectors.parse_labels(params.get("labelSelector")),
            fields=fields,
            since=since_rv,
            bookmarks=routing.truthy(params.get("allowWatchBookmarks")),
            initial_events_end=initial_events,
            timeout=_number(params, "timeoutSeconds"),
        )
        return request

    def _patch(
        self,
        request: kmock.Request,
        spec: resources.ResourceSpec,
        route: routing.Route,
        *,
        manager: str,
    ) -> JSON | Reply:
        accepted = (
            (JSON_PATCH, MERGE, APPLY) if spec.custom else (JSON_PATCH, MERGE, STRATEGIC, APPLY)
        )
        content_type = _content_type(request)
        if content_type not in accepted:
            raise statuses.unsupported_media_type(content_type, accepted)
        patch_type = PATCH_TYPES[content_type]
        if patch_type == "apply" and not request.params.get("fieldManager"):
            raise statuses.bad_request(
                "PATCH requests with apply-patch content type require a field manager"
            )
        if patch_type != "apply" and request.params.get("force"):
            raise statuses.bad_request("force may only be set for apply patches")
        obj, created = self.store.patch(
            spec,
            _decode(request, accepted=accepted),
            namespace=route.namespace,
            name=route.name or "",
            patch_type=patch_type,
            subresource=route.subresource,
            manager=manager,
            force=routing.truthy(request.params.get("force")),
        )
        return Reply(201, obj) if created else obj


def _header(request: kmock.Request, name: str) -> str:
    for key, value in request.headers.items():
        if key.lower() == name.lower():
            return value
    return ""


def _user_agent(request: kmock.Request) -> str:
    return _header(request, "User-Agent")


def _content_type(request: kmock.Request) -> str:
    return _header(request, "Content-Type").split(";")[0].strip().lower()


def _decode(request: kmock.Request, *, accepted: tuple[str, ...], optional: bool = False) -> Any:
    if not request.body.strip():
        if optional:
            return None
        raise statuses.bad_request("the request body is empty")
    content_type = _content_type(request) or "application/json"
    if content_type not in accepted:
        raise statuses.unsupported_media_type(content_type, accepted)
    try:
        if content_type == APPLY:
            return yaml.safe_load(request.body)  # JSON is YAML too; kubernetes-asyncio sends JSON
        return json.loads(request.body)
    except (ValueError, yaml.YAMLError) as e:
        raise statuses.bad_request(f"the request body could not be decoded: {e}") from None


def _number(params: Mapping[str, str], name: str) -> int | None:
    value = params.get(name)
    try:
        return int(value) if value else None
    except ValueError:
        raise statuses.bad_request(f"invalid {name}: {value!r}") from None


def _key(obj: Mapping[str, Any]) -> tuple[str, str]:
    """The storage key order items are listed in (and pages continue from)."""
    meta = obj.get("metadata", {})
    return (meta.get("namespace", ""), meta.get("name", ""))


def _encode_continue(start: tuple[str, str], resource_version: str) -> str:
    raw = json.dumps({"v": "meta.k8s.io/v1", "rv": resource_version, "start": list(start)})
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _decode_continue(token: str) -> tuple[tuple[str, str], str]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        namespace, name = data["start"]
        return (str(namespace), str(name)), str(data["rv"])
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise statuses.bad_request("continue key is not valid") from None
