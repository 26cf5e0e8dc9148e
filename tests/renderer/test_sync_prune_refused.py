"""A prune the API refuses (403, an admission webhook) is logged and the pass goes on: the
other objects are pruned, statuses and finalizers written, and the sync loop keeps running."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, cast

import pytest

from tailwire.services.renderer import domain
from tailwire.services.renderer.adapters import kube, syncing
from tailwire.shared import errors

Key = tuple[str, str, str, str]
REFUSED: Key = ("v1", "Service", "apps", "locked")
PRUNABLE: Key = ("v1", "Service", "apps", "stale")
REF = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "apps"}}


class RefusingWriter:
    """Lists two managed Services; refuses to delete one of them."""

    def __init__(self) -> None:
        self.deleted: list[Key] = []
        self.finalizers: list[list[str]] = []
        self.statuses: list[dict[str, Any]] = []

    async def apply(self, manifest: domain.Manifest) -> None:
        return None

    async def list_managed(self, scope: domain.PruneScope) -> list[Key]:
        return [REFUSED, PRUNABLE]

    async def delete(self, key: Key) -> None:
        if key == REFUSED:
            raise errors.PermanentBackendError("delete Service/locked: HTTP 403 Forbidden")
        self.deleted.append(key)

    async def patch_status(self, ref: domain.Manifest, status: dict[str, Any]) -> None:
        self.statuses.append(status)

    async def set_finalizers(self, ref: domain.Manifest, finalizers: list[str]) -> None:
        self.finalizers.append(finalizers)

    async def close(self) -> None:
        return None


async def test_a_refused_prune_is_logged_and_the_pass_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    writer = RefusingWriter()
    sync = syncing.ManifestSync(writer=cast(kube.KubeWriter, writer))
    task = asyncio.create_task(sync.run())
    try:
        sync.update(
            syncing.Desired(
                prune=(
                    domain.PruneScope(api_version="v1", kind="Service", namespace=None, labels={}),
                ),
                statuses=((REF, {"ok": True}),),
                finalizers=((REF, ()),),
            )
        )
        async with asyncio.timeout(5):
            await sync.synced.wait()
        assert writer.deleted == [PRUNABLE]
        assert writer.statuses == [{"ok": True}]
        assert writer.finalizers == [[]]
        assert "pruning Service/apps locked failed: delete Service/locked: HTTP 403" in caplog.text
        assert not task.done()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
