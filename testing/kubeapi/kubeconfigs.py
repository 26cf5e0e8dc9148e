"""Kubeconfig files and API clients made from them, the way the services get theirs.

Responsible for: writing a kubeconfig that points at a server (no auth, for
the emulator), making a ``kubernetes_asyncio.client.ApiClient`` from any
kubeconfig (the emulator's or K3s's, with its certificates), and the
:class:`Cluster` protocol both the emulator and the K3s container satisfy.

Must not: touch the process-wide default configuration of kubernetes-asyncio
(``Configuration.set_default``) or ``~/.kube``; every client is explicit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import yaml
from kubernetes_asyncio import client, config


class Cluster(Protocol):
    """What a test needs from any Kubernetes API, emulated or real."""

    @property
    def kubeconfig_path(self) -> Path: ...

    async def api_client(self) -> client.ApiClient: ...


def write_kubeconfig(path: Path, *, server: str, name: str = "tailwire-kubeapi") -> Path:
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": {"server": server}}],
        "users": [{"name": name, "user": {}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
        "current-context": name,
        "preferences": {},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


async def new_api_client(kubeconfig_path: Path) -> client.ApiClient:
    """A client configured from the file alone; the caller closes it (``async with``)."""
    return await config.new_client_from_config(
        config_file=str(kubeconfig_path), persist_config=False
    )
