"""A fake tailscaled LocalAPI on a unix socket: `POST /localapi/v0/reload-config`.

It answers as tailscaled does (`{"Reloaded": true}`, or `{"Reloaded": false, "Err": ...}`
while a fault is armed), refuses other methods (405) and foreign Host headers (403, like
tailscaled's DNS-rebinding guard), and counts every reload call. When given the config
file's path it records the file's content at each call, so a test sees what tailscaled would
have reloaded. Only for tests and `tailwire dev`: it never runs tailscaled.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from types import TracebackType

from aiohttp import web

RELOAD_PATH = "/localapi/v0/reload-config"
ALLOWED_HOSTS = frozenset({"local-tailscaled.sock", "localhost", "127.0.0.1"})


@dataclasses.dataclass
class Reload:
    """One reload call as the fake saw it."""

    answered: bool
    config: object | None


class FakeLocalAPI:
    """`async with FakeLocalAPI(socket_path=...) as api:`; `api.reloads` lists the calls."""

    def __init__(self, *, socket_path: Path, config_path: Path | None = None) -> None:
        self.socket_path = socket_path
        self.config_path = config_path
        self.reloads: list[Reload] = []
        self.failures_left = 0
        self.failure_reason = "config file changed while reloading"
        self._runner: web.AppRunner | None = None

    @property
    def calls(self) -> int:
        return len(self.reloads)

    def fail_next(self, count: int, *, reason: str | None = None) -> None:
        """Answer the next `count` reloads with `Reloaded: false`."""
        self.failures_left = count
        if reason is not None:
            self.failure_reason = reason

    async def _reload(self, request: web.Request) -> web.Response:
        if request.host.split(":")[0] not in ALLOWED_HOSTS:
            return web.Response(status=403, text="invalid localapi request\n")
        if request.method != "POST":
            return web.Response(status=405, text="only POST allowed\n")
        config = None
        if self.config_path is not None and self.config_path.exists():
            config = json.loads(self.config_path.read_text())
        if self.failures_left > 0:
            self.failures_left -= 1
            self.reloads.append(Reload(answered=False, config=config))
            return web.json_response({"Reloaded": False, "Err": self.failure_reason})
        self.reloads.append(Reload(answered=True, config=config))
        return web.json_response({"Reloaded": True})

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", RELOAD_PATH, self._reload)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        self.socket_path.parent.mkdir(parents=True, exist_ok=True)
        await web.UnixSite(self._runner, str(self.socket_path)).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self.socket_path.unlink(missing_ok=True)

    async def __aenter__(self) -> FakeLocalAPI:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()
