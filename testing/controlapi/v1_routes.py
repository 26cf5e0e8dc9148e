"""HTTP handlers and JSON shapes of Headscale's REST gateway (`/api/v1`), the subset tailwire uses.

Bodies follow grpc-gateway's protojson: camelCase names, every field emitted (unset messages
as null), uint64 ids as strings, timestamps in RFC 3339. Errors are gRPC statuses
(`{"code", "message", "details"}`), rendered by the server's middleware from `ApiError`.
Handlers must not echo a request body, and return a full key only from `POST /preauthkey`.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from .clock import format_rfc3339, parse_rfc3339
from .errors import ApiError
from .headscale import Headscale, Node, PreAuthKey, User


class V1Api:
    """The `/api/v1` routes bound to one Headscale state."""

    def __init__(self, *, headscale: Headscale) -> None:
        self.headscale = headscale

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/api/v1/preauthkey", self.create_key),
            web.get("/api/v1/preauthkey", self.list_keys),
            web.delete("/api/v1/preauthkey", self.delete_key),
            web.post("/api/v1/preauthkey/expire", self.expire_key),
            web.get("/api/v1/node", self.list_nodes),
            web.get("/api/v1/node/{node_id}", self.get_node),
            web.delete("/api/v1/node/{node_id}", self.delete_node),
        ]

    def _authorize(self, request: web.Request) -> None:
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise ApiError(status=401, message="Unauthorized")
        self.headscale.authenticate(value.strip())

    async def create_key(self, request: web.Request) -> web.Response:
        self._authorize(request)
        body = await _json_object(request)
        tags = body.get("aclTags") or []
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise ApiError(status=400, message="aclTags must be a list of strings")
        expiration = body.get("expiration")
        if expiration is not None and not isinstance(expiration, str):
            raise ApiError(status=400, message="expiration must be an RFC 3339 timestamp")
        try:
            expires_at = parse_rfc3339(expiration) if expiration else None
        except ValueError:
            raise ApiError(status=400, message="expiration must be an RFC 3339 timestamp") from None
        key, secret = self.headscale.create_key(
            user_id=_optional_uint64(body.get("user"), name="user"),
            reusable=_bool(body, "reusable"),
            ephemeral=_bool(body, "ephemeral"),
            expiration=expires_at,
            acl_tags=tags,
        )
        return web.json_response({"preAuthKey": render_key(key, secret=secret)})

    async def list_keys(self, request: web.Request) -> web.Response:
        self._authorize(request)
        user_id = _optional_uint64(request.query.get("user"), name="user")
        keys = self.headscale.list_keys(user_id=user_id)
        return web.json_response({"preAuthKeys": [render_key(k) for k in keys]})

    async def expire_key(self, request: web.Request) -> web.Response:
        self._authorize(request)
        body = await _json_object(request)
        if body.get("id") not in (None, "", 0, "0"):
            key = self.headscale.get_key(_uint64(body["id"], name="id"))
        elif isinstance(body.get("key"), str) and body.get("user") is not None:
            user_id = _uint64(body["user"], name="user")
            key = self.headscale.find_key(user_id=user_id, secret=body["key"])
        else:
            raise ApiError(status=400, message="id is required")
        self.headscale.expire_key(key)
        return web.json_response({})

    async def delete_key(self, request: web.Request) -> web.Response:
        self._authorize(request)
        self.headscale.delete_key(_uint64(request.query.get("id"), name="id"))
        return web.json_response({})

    async def list_nodes(self, request: web.Request) -> web.Response:
        self._authorize(request)
        wanted = request.query.get("user")
        nodes = [
            render_node(n)
            for n in self.headscale.nodes.values()
            if not wanted or wanted in (n.user.name, str(n.user.id))
        ]
        return web.json_response({"nodes": nodes})

    async def get_node(self, request: web.Request) -> web.Response:
        self._authorize(request)
        node = self.headscale.get_node(_uint64(request.match_info["node_id"], name="nodeId"))
        return web.json_response({"node": render_node(node)})

    async def delete_node(self, request: web.Request) -> web.Response:
        self._authorize(request)
        self.headscale.delete_node(_uint64(request.match_info["node_id"], name="nodeId"))
        return web.json_response({})


def render_user(user: User) -> dict[str, Any]:
    return {
        "id": str(user.id),
        "name": user.name,
        "createdAt": format_rfc3339(user.created_at),
        "displayName": "",
        "email": "",
        "providerId": "",
        "provider": "",
        "profilePicUrl": "",
    }


def render_key(key: PreAuthKey, *, secret: str | None = None) -> dict[str, Any]:
    return {
        "user": render_user(key.user) if key.user else None,
        "id": str(key.id),
        "key": secret if secret is not None else key.masked,
        "reusable": key.reusable,
        "ephemeral": key.ephemeral,
        "used": key.used,
        "expiration": format_rfc3339(key.expiration),
        "createdAt": format_rfc3339(key.created_at),
        "aclTags": list(key.acl_tags),
    }


def render_node(node: Node) -> dict[str, Any]:
    return {
        "id": str(node.id),
        "machineKey": f"mkey:{node.id:064x}",
        "nodeKey": f"nodekey:{node.id:064x}",
        "discoKey": f"discokey:{node.id:064x}",
        "ipAddresses": list(node.ip_addresses),
        "name": node.hostname,
        "user": render_user(node.user),
        "lastSeen": format_rfc3339(node.last_seen),
        "expiry": None,
        "preAuthKey": render_key(node.pre_auth_key),
        "createdAt": format_rfc3339(node.created_at),
        "registerMethod": "REGISTER_METHOD_AUTH_KEY",
        # 0.28 keeps a node's tags in forcedTags; validTags/invalidTags stay empty.
        "forcedTags": list(node.tags),
        "invalidTags": [],
        "validTags": [],
        "givenName": node.given_name,
        "online": True,
        "approvedRoutes": [],
        "availableRoutes": [],
        "subnetRoutes": [],
    }


async def _json_object(request: web.Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.text() or "{}")
    except json.JSONDecodeError:
        raise ApiError(status=400, message="invalid JSON body") from None
    if not isinstance(body, dict):
        raise ApiError(status=400, message="body must be a JSON object")
    return body


def _bool(body: dict[str, Any], name: str) -> bool:
    value = body.get(name, False)
    if not isinstance(value, bool):
        raise ApiError(status=400, message=f"{name} must be a boolean")
    return value


def _optional_uint64(value: object, *, name: str) -> int | None:
    return None if value is None or value == "" else _uint64(value, name=name)


def _uint64(value: object, *, name: str) -> int:
    """protojson accepts a uint64 as a JSON number or a decimal string."""
    if value is None or value == "":
        raise ApiError(status=400, message=f"{name} is required")
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    raise ApiError(status=400, message=f"{name} must be a numeric id")
