"""The K3s path: a real API server in a container, with the emulator's interface.

Skipped here unless a Docker engine answers and ``TAILWIRE_TEST_K3S=1`` opts in
(it pulls an image and takes tens of seconds).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from kubernetes_asyncio import client

from tailwire.testing import k3s


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.skipif(
    os.environ.get("TAILWIRE_TEST_K3S") != "1",
    reason="K3s runs only when TAILWIRE_TEST_K3S=1 (image pull, ~30 s start)",
)
@pytest.mark.skipif(
    not k3s.docker_reachable(), reason="no Docker engine reachable: K3s cannot run here"
)
async def test_k3s_serves_the_api_through_its_kubeconfig(tmp_path: Path) -> None:
    async with k3s.serve(workdir=tmp_path) as cluster:
        assert cluster.kubeconfig_path.exists()
        async with await cluster.api_client() as api_client:
            namespaces = await client.CoreV1Api(api_client).list_namespace()
    assert "default" in {n.metadata.name for n in namespaces.items}


def test_docker_reachable_is_a_plain_bool() -> None:
    assert k3s.docker_reachable() in (True, False)
