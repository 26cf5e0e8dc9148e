"""HTTP handlers of the Tailscale API v2 subset: OAuth token, keys, devices, split DNS.

Each handler authenticates the bearer token, checks the scope the public docs name for the
endpoint, parses the body strictly (a wrong type is a 400, as it is upstream) and delegates to
`oauth`/`tailnet`. Handlers raise `ApiError`; the server's middleware renders it. They must not
log or echo a request body, and return a key secret only from `POST .../keys`.
"""

from __future__ import annotations

import binascii
import json
from collections.abc import Mapping
from typing import Any

from aiohttp import BasicAuth, web

from . import clock as clocks
from . import v2_json
from .errors import ApiError
from .oauth import AccessToken, OAuthServer
from .tailnet import Tailnet


class V2Api:
    """The `/api/v2` routes bound to one tailnet's state."""

    def __init__(self, *, oauth: OAuthServer, tailnet: Tailnet, clock: clocks.Clock) -> None:
        self.oauth = oauth
        self.tailnet = tailnet
        self.clock = clock

    def routes(self) -> list[web.RouteDef]:
        tn = "/api/v2/tailnet/{tailnet}"
        return [
            web.post("/api/v2/oauth/token", self.token),
            web.get(f"{tn}/keys", self.list_keys),
            web.post(f"{tn}/keys", self.create_key),
            web.get(f"{tn}/keys/{{key_id}}", self.get_key),
            web.delete(f"{tn}/keys/{{key_id}}", self.delete_key),
            web.get(f"{tn}/devices", self.list_devices),
            web.get("/api/v2/device/{device_id}", self.get_device),
            web.delete("/api/v2/device/{device_id}", self.delete_device),
            web.get(f"{tn}/dns/split-dns", self.get_split_dns),
            web.patch(f"{tn}/dns/split-dns", self.patch_split_dns),
            web.put(f"{tn}/dns/split-dns", self.put_split_dns),
        ]

    # --- OAuth ----------------------------------------------------------------------------

    async def token(self, request: web.Request) -> web.Response:
        form = await request.post()
        client_id, client_secret = _client_credentials(request, form=form)
        if form.get("grant_type", "client_credentials") != "client_credentials":
            raise ApiError(status=400, message="unsupported grant_type")
        secret, token = self.oauth.mint_token(
            client_id=client_id,
            client_secret=client_secret,
            scopes=_split(form.get("scope")),
            tags=_split(form.get("tags")),
        )
        body: dict[str, Any] = {
            "access_token": secret,
            "token_type": "Bearer",
            "expires_in": int(self.oauth.token_lifetime.total_seconds()),
            "scope": " ".join(sorted(token.scopes)),
        }
        if token.tags:
            body["tags"] = " ".join(sorted(token.tags))
        return web.json_response(body)

    def _authorize(self, request: web.Request, *, scope: str) -> AccessToken:
        token = self.oauth.authenticate(_bearer(request))
        tailnet = request.match_info.get("tailnet")
        if tailnet is not None and not self.tailnet.knows(tailnet):
            raise ApiError(status=404, message=f"tailnet {tailnet!r} not found")
        self.oauth.require(token, scope=scope)
        return token

    # --- keys -----------------------------------------------------------------------------

    async def list_keys(self, request: web.Request) -> web.Response:
        self._authorize(request, scope="auth_keys:read")
        now = self.clock.now()
        keys = [v2_json.render_key(k, now=now) for k in self.tailnet.active_keys()]
        return web.json_response({"keys": keys})

    async def create_key(self, request: web.Request) -> web.Response:
        token = self._authorize(request, scope="auth_keys")
        body = await _json_object(request)
        capabilities = _field(body, name="capabilities", kind=dict, required=True)
        devices = _field(capabilities, name="devices", kind=dict, required=True)
        create = _field(devices, name="create", kind=dict) or {}
        tags = _field(create, name="tags", kind=list) or []
        if not all(isinstance(t, str) for t in tags):
            raise ApiError(status=400, message="tags must be strings")
        key, secret = self.tailnet.create_key(
            token=token,
            reusable=bool(_field(create, name="reusable", kind=bool)),
            ephemeral=bool(_field(create, name="ephemeral", kind=bool)),
            preauthorized=bool(_field(create, name="preauthorized", kind=bool)),
            tags=tags,
            expiry_seconds=_field(body, name="expirySeconds", kind=int),
            description=_field(body, name="description", kind=str) or "",
        )
        return web.json_response(v2_json.render_key(key, now=self.clock.now(), secret=secret))

    async def get_key(self, request: web.Request) -> web.Response:
        self._authorize(request, scope="auth_keys:read")
        key = self.tailnet.get_key(request.match_info["key_id"])
        return web.json_response(v2_json.render_key(key, now=self.clock.now()))

    async def delete_key(self, request: web.Request) -> web.Response:
        self._authorize(request, scope="auth_keys")
        self.tailnet.delete_key(request.match_info["key_id"])
        return web.Response(status=200)

    # --- devices --------------------------------------------------------------------------

    async def list_devices(self, request: web.Request) -> web.Response:
        self._authorize(request, scope="devices:core:read")
        fields = _fields(request)
        devices = [v2_json.render_device(d, fields=fields) for d in self.tailnet.devices.values()]
        return web.json_response({"devices": devices})

    async def get_device(self, request: web.Request) -> web.Response:
        self._authorize(request, scope="devices:core:read")
        device = self.tailnet.get_device(request.match_info["device_id"])
        return web.json_response(v2_json.render_device(device, fields=_fields(request)))

    async def delete_device(self, request: web.Request) -> web.Response:
        self._authorize(request, scope="devices:core")
        self.tailnet.delete_device(request.match_info["device_id"])
        return web.Response(status=200)

    # --- split DNS ------------------------------------------------------------------------

    async def get_split_dns(self, request: web.Request) -> web.Response:
        self._authorize(request, scope="dns:read")
        return web.json_response(dict(self.tailnet.split_dns))

    async def patch_split_dns(self, request: web.Request) -> web.Response:
        self._authorize(request, scope="dns")
        changes = _split_dns_body(await _json_object(request))
        return web.json_response(self.tailnet.patch_split_dns(changes))

    async def put_split_dns(self, request: web.Request) -> web.Response:
        self._authorize(request, scope="dns")
        settings = _split_dns_body(await _json_object(request))
        return web.json_response(self.tailnet.put_split_dns(settings))


def _client_credentials(request: web.Request, *, form: Mapping[str, object]) -> tuple[str, str]:
    # Go's oauth2 (what most clients use) first tries HTTP Basic, then form fields.
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("basic "):
        try:
            basic = BasicAuth.decode(header)
        except (ValueError, binascii.Error):
            raise ApiError(status=401, message="invalid client credentials") from None
        login: str = basic.login
        password: str = basic.password
        return login, password
    client_id, client_secret = form.get("client_id"), form.get("client_secret")
    if not isinstance(client_id, str) or not isinstance(client_secret, str):
        raise ApiError(status=401, message="invalid client credentials")
    return client_id, client_secret


def _bearer(request: web.Request) -> str:
    """The access token, sent as `Bearer <token>` or as the Basic-auth user name."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    if scheme.lower() == "basic":
        try:
            login: str = BasicAuth.decode(header).login
            return login
        except (ValueError, binascii.Error):
            pass
    raise ApiError(status=401, message="API token invalid")


def _split(value: object) -> list[str] | None:
    # The token endpoint takes space-separated lists (RFC 6749); commas are seen in the wild.
    if not isinstance(value, str) or not value.strip():
        return None
    return [part for part in value.replace(",", " ").split() if part]


def _fields(request: web.Request) -> str:
    fields = request.query.get("fields", "default")
    if fields not in ("all", "default"):
        raise ApiError(status=400, message="fields must be 'all' or 'default'")
    return str(fields)


async def _json_object(request: web.Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.text())
    except json.JSONDecodeError:
        raise ApiError(status=400, message="request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(status=400, message="request body must be a JSON object")
    return body


def _field(body: dict[str, Any], *, name: str, kind: type, required: bool = False) -> Any:
    value = body.get(name)
    if value is None:
        if required:
            raise ApiError(status=400, message=f"{name} is required")
        return None
    # bool is an int in Python; JSON keeps them apart, so must we.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ApiError(status=400, message=f"{name} must be of type {kind.__name__}")
    return value


def _split_dns_body(body: dict[str, Any]) -> dict[str, list[str] | None]:
    for domain, servers in body.items():
        if servers is not None and (
            not isinstance(servers, list) or not all(isinstance(s, str) for s in servers)
        ):
            raise ApiError(status=400, message=f"nameservers for {domain} must be a list")
    return body
