"""A gateway's tailscaled: its config file on the host and its LocalAPI unix socket.

`write_config` replaces the file the gateway reads (`tailscaled --config=...`) atomically and
says whether its content changed; `reload` calls `POST /localapi/v0/reload-config` over the
socket, as the tailscale CLI does, and retries (with the injected sleep) until tailscaled
answers `{"Reloaded": true}`; `status` reads its peers (to resolve the exit node). Nothing
secret is written: the config only references the mounted authkey file. It must not restart
any pod.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from tailwire.shared import errors
from tailwire.shared.events import gateways

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]
RELOAD_PATH = "/localapi/v0/reload-config"
STATUS_PATH = "/localapi/v0/status"
# tailscaled accepts LocalAPI requests for this host name only (no DNS-rebinding tricks).
LOCALAPI_HOST = "local-tailscaled.sock"


def file_hash(path: Path) -> str | None:
    """The config hash of the file on disk (as the renderer computes it), None if unreadable."""
    try:
        content = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return gateways.config_hash(content) if isinstance(content, dict) else None


def write_config(path: Path, config: dict[str, Any]) -> bool:
    """Write the config atomically; False (and no write) if the file already holds it."""
    if file_hash(path) == gateways.config_hash(config):
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tailscaled-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(config, handle, indent=2, sort_keys=True)
            handle.write("\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True


async def _call(
    socket_path: Path, method: str, path: str, *, request_timeout: float
) -> httpx.Response:
    # AF_UNIX paths stop at 108 bytes and state dirs of long group/tailnet names are longer:
    # reach the socket through a short /proc/self/fd path of its directory instead.
    dir_fd = os.open(socket_path.parent, os.O_PATH) if len(str(socket_path)) > 100 else None
    uds = f"/proc/self/fd/{dir_fd}/{socket_path.name}" if dir_fd is not None else str(socket_path)
    transport = httpx.AsyncHTTPTransport(uds=uds)
    try:
        async with httpx.AsyncClient(
            transport=transport, base_url=f"http://{LOCALAPI_HOST}", timeout=request_timeout
        ) as client:
            try:
                return await client.request(method, path, headers={"Sec-Tailscale": "localapi"})
            except httpx.HTTPError as exc:
                raise errors.TransientBackendError(f"LocalAPI {socket_path}: {exc!r}") from exc
    finally:
        if dir_fd is not None:
            os.close(dir_fd)


async def _json(
    socket_path: Path, method: str, path: str, *, request_timeout: float
) -> dict[str, Any]:
    """A LocalAPI call's JSON object; TransientBackendError for anything else."""
    response = await _call(socket_path, method, path, request_timeout=request_timeout)
    if response.status_code != 200:
        raise errors.TransientBackendError(
            f"LocalAPI {socket_path}: HTTP {response.status_code}: {response.text[:200]}"
        )
    try:
        body = response.json()
    except ValueError as exc:
        raise errors.TransientBackendError(f"LocalAPI {socket_path}: not JSON") from exc
    if not isinstance(body, dict):
        raise errors.TransientBackendError(f"LocalAPI {socket_path}: {body!r} is not an object")
    return body


async def status(socket_path: Path, *, request_timeout: float = 5.0) -> dict[str, Any]:
    """tailscaled's `GET /localapi/v0/status` (its peers, its own addresses, its state)."""
    return await _json(socket_path, "GET", STATUS_PATH, request_timeout=request_timeout)


async def reload_once(socket_path: Path, *, request_timeout: float = 5.0) -> None:
    """One reload call; TransientBackendError unless tailscaled says `Reloaded`."""
    body = await _json(socket_path, "POST", RELOAD_PATH, request_timeout=request_timeout)
    if body.get("Reloaded") is not True:
        raise errors.TransientBackendError(
            f"LocalAPI {socket_path}: not reloaded: {body.get('Err') or body!r}"
        )


async def reload(
    socket_path: Path,
    *,
    sleep: Sleep,
    initial_delay: float = 0.5,
    max_delay: float = 30.0,
    max_attempts: int | None = None,
) -> int:
    """Reload until tailscaled reports `Reloaded`; returns the number of calls made."""
    delay = initial_delay
    attempt = 0
    while True:
        attempt += 1
        try:
            await reload_once(socket_path)
            return attempt
        except errors.TransientBackendError as exc:
            if max_attempts is not None and attempt >= max_attempts:
                raise
            log.warning("gateway reload failed (attempt %d), retrying: %s", attempt, exc)
        await sleep(delay)
        delay = min(delay * 2, max_delay)
