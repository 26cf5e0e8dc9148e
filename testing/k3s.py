"""A real Kubernetes API in a K3s container, where a Docker engine is reachable.

Responsible for: telling whether Docker answers (:func:`docker_reachable`),
starting testcontainers' ``K3SContainer`` and handing out the same
interface the emulator does (``kubeconfig_path``, ``api_client()``) so one
test runs unchanged against either (:class:`tailwire.testing.kubeapi.Cluster`).

Must not: fall back to the emulator by itself (the fixtures choose), keep
the container beyond its block, or touch ``~/.kube``. Startup takes tens of
seconds and pulls an image: callers share one container per session.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import socket
import urllib.parse
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from kubernetes_asyncio import client
from testcontainers.community.k3s import K3SContainer
from testcontainers.core import docker_client

from .kubeapi import kubeconfigs

# Pinned so the contract the emulator is held to does not move under it; override to try others.
IMAGE = os.environ.get("TAILWIRE_TEST_K3S_IMAGE", "rancher/k3s:v1.33.1-k3s1")


def docker_reachable() -> bool:
    """Whether a Docker engine answers a ping, where testcontainers would look for one."""
    host = docker_client.get_docker_host() or "unix:///var/run/docker.sock"
    # docker-py leaks the socket of a refused connection (a ResourceWarning, an error
    # under filterwarnings=error), so a refused or missing endpoint is found out here first.
    if not _connectable(host):
        return False
    try:
        docker = docker_client.DockerClient(timeout=3)
        try:
            return bool(docker.client.ping())
        finally:
            docker.client.close()
    # Any failure means "not reachable": TLS files missing, an API error, a timeout...
    except Exception:  # noqa: BLE001
        return False


def _connectable(host: str) -> bool:
    url = urllib.parse.urlparse(host)
    try:
        if url.scheme in ("unix", "http+unix"):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                probe.settimeout(3)
                probe.connect(url.path)
        elif url.scheme in ("tcp", "http", "https") and url.hostname:
            with socket.create_connection((url.hostname, url.port or 2375), timeout=3):
                pass
    except OSError:
        return False
    return True  # ssh:// and the like: let docker-py try


@dataclasses.dataclass(frozen=True)
class K3sCluster:
    kubeconfig_path: Path
    container: K3SContainer

    async def api_client(self) -> client.ApiClient:
        return await kubeconfigs.new_api_client(self.kubeconfig_path)


@contextlib.contextmanager
def run(*, workdir: Path, image: str = IMAGE) -> Iterator[K3sCluster]:
    """Start K3s, write its kubeconfig (host port mapped) into ``workdir``, stop it after."""
    with K3SContainer(image=image) as container:
        path = workdir / "kubeconfig"
        path.write_text(container.config_yaml())
        yield K3sCluster(kubeconfig_path=path, container=container)


@contextlib.asynccontextmanager
async def serve(*, workdir: Path, image: str = IMAGE) -> AsyncIterator[K3sCluster]:
    """:func:`run` for async code: the blocking Docker calls go to a thread."""
    container = K3SContainer(image=image)
    await asyncio.to_thread(container.start)
    try:
        path = workdir / "kubeconfig"
        path.write_text(await asyncio.to_thread(container.config_yaml))
        yield K3sCluster(kubeconfig_path=path, container=container)
    finally:
        await asyncio.to_thread(container.stop)
