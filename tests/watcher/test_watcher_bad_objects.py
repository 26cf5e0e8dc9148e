"""Bad input never stops the mirroring: an object that cannot be normalized is reported with
its name and field, an object whose snapshot exceeds the bus limit is reported with its
size, and the objects around them are mirrored as usual."""

from __future__ import annotations

import logging

import pytest

from tailwire.services.watcher import config
from tailwire.shared import subjects
from tailwire.testing import kubeapi
from tests.watcher import conftest


async def test_bad_and_oversized_objects_are_reported_and_skipped(
    kube_emulator: kubeapi.KubeAPI,
    start_watcher: conftest.StartWatcher,
    recorder: conftest.Recorder,
    caplog: pytest.LogCaptureFixture,
) -> None:
    kube_emulator.create(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "gateway-internal", "namespace": "default"},
            "spec": {"ports": [{"port": "https"}]},
        }
    )
    settings = config.WatcherSettings(
        watch_kinds=[subjects.Kind.SERVICE, subjects.Kind.EGRESSGROUP]
    )
    with caplog.at_level(logging.WARNING, logger="tailwire.services.watcher"):
        async with start_watcher(watcher_settings=settings):
            await conftest.wait_watching(kube_emulator, "services", "egressgroups")
            kube_emulator.create(
                {
                    "apiVersion": "tailscale.rajsingh.info/v1alpha1",
                    "kind": "EgressGroup",
                    "metadata": {"name": "huge"},
                    "spec": {"routes": [f"10.{i // 256}.{i % 256}.0/24" for i in range(40_000)]},
                }
            )
            kube_emulator.create(
                {
                    "apiVersion": "tailscale.rajsingh.info/v1alpha1",
                    "kind": "EgressGroup",
                    "metadata": {"name": "fine"},
                    "spec": {},
                }
            )
            await recorder.wait_count(1)
    assert recorder.names() == [("egressgroup", "fine", False)]
    messages = [r.getMessage() for r in caplog.records]
    assert any("service/default/gateway-internal" in m and "port" in m for m in messages)
    assert any("egressgroup/huge" in m and "bytes" in m for m in messages)
