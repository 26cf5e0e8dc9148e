"""The aiohttp application and its lifecycle: one local server for both control-plane flavours.

`serve()` binds 127.0.0.1 on a free port and yields a `FakeControlAPI`, the handle tests and
`tailwire dev` use to register OAuth clients, simulate tailscaled joining, arm faults and read
the request log. The middleware applies latency and injected faults, renders `ApiError` in the
flavour's error shape and logs method, path and status only. Every response carries
`X-Tailwire-Fake: controlapi` so nobody mistakes it for Tailscale. It must never listen on
anything but the address it was given, nor log bodies, headers or secrets.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import random
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from . import clock as clocks
from . import faults as faulting
from . import headscale as headscales
from . import oauth as oauths
from . import tailnet as tailnets
from .errors import ApiError
from .v1_routes import V1Api
from .v2_routes import V2Api

LABEL_HEADER = "X-Tailwire-Fake"
_BANNER = (
    "tailwire local control-plane stand-in: a fake of the Tailscale API v2 and Headscale "
    "/api/v1 for development and tests. It is not Tailscale.\n"
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class FakeControlAPI:
    """The running fake: its URL, its state and the hooks tests drive it with."""

    def __init__(
        self,
        *,
        clock: clocks.Clock,
        tailnet: str,
        magicdns_suffix: str,
        token_lifetime: datetime.timedelta,
        seed: int,
        device_approval: bool,
    ) -> None:
        rng = random.Random(seed)
        self.url = ""
        self.clock = clock
        self.faults = faulting.Faults(seed=seed)
        self.requests = faulting.RequestLog()
        self.oauth = oauths.OAuthServer(clock=clock, rng=rng, token_lifetime=token_lifetime)
        self.tailnet = tailnets.Tailnet(
            name=tailnet,
            clock=clock,
            rng=rng,
            magicdns_suffix=magicdns_suffix,
            device_approval=device_approval,
        )
        self.headscale = headscales.Headscale(clock=clock, rng=rng)

    # --- Tailscale flavour ----------------------------------------------------------------

    @property
    def keys(self) -> dict[str, tailnets.AuthKey]:
        """Auth keys by id, including revoked and expired ones (secrets are not kept)."""
        return self.tailnet.keys

    @property
    def devices(self) -> dict[str, tailnets.Device]:
        """Devices by legacy numeric id."""
        return self.tailnet.devices

    @property
    def split_dns(self) -> dict[str, list[str]]:
        return self.tailnet.split_dns

    def add_oauth_client(
        self,
        *,
        scopes: list[str] | tuple[str, ...],
        tags: list[str] | tuple[str, ...] = (),
        client_id: str | None = None,
        exact_tags: bool = False,
    ) -> oauths.NewOAuthClient:
        """Register an OAuth client owning `tags`; the returned secret is the only copy."""
        return self.oauth.add_client(
            scopes=scopes, tags=tags, client_id=client_id, exact_tags=exact_tags
        )

    def set_tag_owner(self, *, tag: str, owners: list[str] | tuple[str, ...]) -> None:
        """Policy `tagOwners`: keys may carry `tag` if the client owns one of `owners`."""
        self.tailnet.tag_owners[tag] = set(owners)

    def register_device(
        self, *, authkey: str, hostname: str, os: str = "linux", routes: tuple[str, ...] = ()
    ) -> tailnets.Device:
        """Simulate `tailscale up --auth-key=...`; raises `RegistrationError` on a bad key."""
        return self.tailnet.register_device(
            authkey=authkey, hostname=hostname, os=os, routes=routes
        )

    # --- Headscale flavour ----------------------------------------------------------------

    def add_headscale_api_key(self) -> str:
        return self.headscale.add_api_key()

    def add_headscale_user(self, *, name: str) -> headscales.User:
        return self.headscale.add_user(name)

    def register_node(self, *, authkey: str, hostname: str) -> headscales.Node:
        """Simulate a tailscaled joining Headscale with a pre-auth key."""
        return self.headscale.register_node(authkey=authkey, hostname=hostname)


def build_app(fake: FakeControlAPI) -> web.Application:
    """The application serving both flavours, with the fault/log middleware in front."""

    @web.middleware
    async def front(request: web.Request, handler: Handler) -> web.StreamResponse:
        method, path = request.method, request.path
        delay = fake.faults.latency(method=method, path=path)
        if delay > 0:
            await asyncio.sleep(delay)
        rule = fake.faults.pick(method=method, path=path)
        response: web.StreamResponse
        if rule is not None:
            response = _fault_response(rule, path=path)
        else:
            try:
                response = await handler(request)
            except ApiError as error:
                response = _error_response(error, path=path)
            except web.HTTPException as error:  # the router's 404/405
                status_error = ApiError(status=error.status, message=error.reason.lower())
                response = _error_response(status_error, path=path)
        response.headers[LABEL_HEADER] = "controlapi"
        fake.requests.record(
            method=method,
            path=path,
            query=list(request.query.items()),
            status=response.status,
            at=fake.clock.now(),
            injected=rule is not None,
        )
        return response

    async def banner(_: web.Request) -> web.Response:
        return web.Response(text=_BANNER)

    app = web.Application(middlewares=[front])
    app.router.add_get("/", banner)
    v2 = V2Api(oauth=fake.oauth, tailnet=fake.tailnet, clock=fake.clock)
    app.add_routes(v2.routes())
    app.add_routes(V1Api(headscale=fake.headscale).routes())
    return app


def _is_headscale(path: str) -> bool:
    return path.startswith("/api/v1/")


def _error_response(error: ApiError, *, path: str) -> web.Response:
    if _is_headscale(path):
        if error.status == 401:
            # Headscale's auth middleware answers before grpc-gateway, in plain text.
            return web.Response(status=401, text="Unauthorized")
        body = {"code": error.grpc_code, "message": error.message, "details": []}
        return web.json_response(body, status=error.status)
    return web.json_response({"message": error.message}, status=error.status)


def _fault_response(rule: faulting.FaultRule, *, path: str) -> web.Response:
    response = _error_response(ApiError(status=rule.status, message=rule.message), path=path)
    if rule.retry_after is not None:
        response.headers["Retry-After"] = str(rule.retry_after)
    return response


@contextlib.asynccontextmanager
async def serve(
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    clock: clocks.Clock | None = None,
    tailnet: str = "example.com",
    magicdns_suffix: str = "tailfake.ts.net",
    token_lifetime: float = 3600.0,
    seed: int = 0,
    device_approval: bool = False,
) -> AsyncIterator[FakeControlAPI]:
    """Run the fake on `host` (a free port unless `port` is given) for the block's duration."""
    fake = FakeControlAPI(
        clock=clock or clocks.SystemClock(),
        tailnet=tailnet,
        magicdns_suffix=magicdns_suffix,
        token_lifetime=datetime.timedelta(seconds=token_lifetime),
        seed=seed,
        device_approval=device_approval,
    )
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    runner = web.AppRunner(build_app(fake), access_log=None, handle_signals=False)
    try:
        sock.bind((host, port))
        bound_port = sock.getsockname()[1]
        await runner.setup()
        await web.SockSite(runner, sock).start()
        authority = f"[{host}]" if family == socket.AF_INET6 else host
        fake.url = f"http://{authority}:{bound_port}"
        yield fake
    finally:
        await runner.cleanup()
        sock.close()
