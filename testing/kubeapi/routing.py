"""URL paths and HTTP methods of the Kubernetes API, parsed into what is asked.

Responsible for: telling apart discovery paths (``/api``, ``/apis/<group>``,
``/apis/<group>/<version>``), resource paths (collection, object,
subresource, namespaced or not; ``/api/v1/namespaces/<name>/status`` is the
namespace's status, not a resource called "status") and everything else; and
naming the Kubernetes verb (list, watch, get, create, update, patch,
delete, deletecollection) the way audit logs and RBAC do.

Also builds the :class:`kmock.Request` each request is logged and matched as,
with this parsing (kmock 0.8's own fails on ``/api/v1/namespaces``).

Must not: look resources up, or serve anything.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

import aiohttp.web
import kmock

TRUE_VALUES = frozenset({"true", "1"})  # kubernetes-asyncio sends "True"; compared lowercased


@dataclasses.dataclass(frozen=True, kw_only=True)
class Route:
    # "api" | "apis" | "group" | "groupversion" | "resource" | "version" | "health" | "other"
    kind: str
    group: str = ""
    version: str = ""
    plural: str | None = None
    namespace: str | None = None
    name: str | None = None
    subresource: str | None = None


def parse(path: str) -> Route:
    parts = [part for part in path.split("/") if part]
    if parts in (["version"], ["version", ""]):
        return Route(kind="version")
    if parts and parts[0] in ("healthz", "livez", "readyz"):
        return Route(kind="health")
    if parts[:1] == ["api"]:
        group, rest = "", parts[1:]
        if not rest:
            return Route(kind="api")
    elif parts[:1] == ["apis"]:
        if len(parts) == 1:
            return Route(kind="apis")
        if len(parts) == 2:
            return Route(kind="group", group=parts[1])
        group, rest = parts[1], parts[2:]
    else:
        return Route(kind="other")
    version, rest = rest[0], rest[1:]
    if not rest:
        return Route(kind="groupversion", group=group, version=version)
    namespace = None
    # namespaces/<ns>/<plural>... unless it is a namespace's own subresource.
    if (
        rest[0] == "namespaces"
        and len(rest) >= 3
        and not (len(rest) == 3 and rest[2] in ("status", "finalize"))
    ):
        namespace, rest = rest[1], rest[2:]
    if len(rest) > 3:
        return Route(kind="other")
    return Route(
        kind="resource",
        group=group,
        version=version,
        plural=rest[0],
        namespace=namespace,
        name=rest[1] if len(rest) > 1 else None,
        subresource=rest[2] if len(rest) > 2 else None,
    )


def truthy(value: str | None) -> bool:
    return (value or "").lower() in TRUE_VALUES


def verb(method: str, route: Route, params: Mapping[str, str]) -> str | None:
    """The Kubernetes verb of a resource request, or None if the method makes no sense there."""
    method = method.upper()
    if route.name is None:
        match method:
            case "GET":
                return "watch" if truthy(params.get("watch")) else "list"
            case "POST":
                return "create"
            case "DELETE":
                return "deletecollection"
        return None
    match method:
        case "GET":
            return "watch" if truthy(params.get("watch")) else "get"
        case "PUT":
            return "update"
        case "PATCH":
            return "patch"
        case "DELETE":
            return "delete"
    return None


KMOCK_ACTIONS = {
    "list": kmock.action.LIST,
    "watch": kmock.action.WATCH,
    "get": kmock.action.FETCH,
    "create": kmock.action.CREATE,
    "patch": kmock.action.UPDATE,  # kmock's UPDATE is PATCH; PUT has no kmock action
    "delete": kmock.action.DELETE,
}


async def kmock_request(raw: aiohttp.web.BaseRequest, *, number: int) -> kmock.Request:
    body = await raw.read()
    text = body.decode("utf-8", errors="replace")
    data: Any
    try:
        data = json.loads(body) if body else None
    except ValueError:
        data = None  # YAML apply bodies and the like: kmock criteria match on text then
    route = parse(raw.path)
    params = dict(raw.query)
    resource = None
    if route.kind in ("resource", "groupversion"):
        resource = kmock.resource(group=route.group, version=route.version, plural=route.plural)
    action = KMOCK_ACTIONS.get(verb(raw.method, route, params) or "") if resource else None
    return kmock.Request(
        id=number,
        method=raw.method,
        url=raw.url,
        params=params,
        headers=dict(raw.headers),
        cookies=dict(raw.cookies),
        body=body,
        text=text,
        data=data,
        action=action,
        resource=resource,
        namespace=route.namespace,
        name=route.name,
        subresource=route.subresource,
        raw_request=raw,
    )
