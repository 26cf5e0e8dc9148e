"""The watcher outlives its API: a missing CRD is reported once and looked for again; an
unreachable API or an unusable kubeconfig is reported and retried with jittered backoff,
never a crash; once the API is there, mirroring starts."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import kmock
import pytest

from tailwire.services.watcher import config
from tailwire.shared import settings, subjects
from tailwire.testing import kubeapi
from tests.watcher import conftest


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_missing_crd_is_reported_once_and_retried(
    kube_emulator: kubeapi.KubeAPI,
    start_watcher: conftest.StartWatcher,
    recorder: conftest.Recorder,
    fake_sleep: conftest.FakeSleep,
    caplog: pytest.LogCaptureFixture,
) -> None:
    spec = kube_emulator.find("egressgroups")
    kube_emulator.uninstall(spec)
    kube_emulator.create(
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"}}
    )
    settings = config.WatcherSettings(
        watch_kinds=[subjects.Kind.POD, subjects.Kind.EGRESSGROUP], watch_missing_crd_retry=45
    )
    with caplog.at_level(logging.WARNING, logger="tailwire.services.watcher"):
        async with start_watcher(watcher_settings=settings) as wired:
            await conftest.wait_watching(kube_emulator, "pods")
            await recorder.wait_count(1)  # the other kinds are mirrored meanwhile
            await fake_sleep.wait_sleeps(1)
            fake_sleep.advance()
            await fake_sleep.wait_sleeps(2)
            assert fake_sleep.delays == [45, 45]
            reports = [r for r in caplog.records if "not served" in r.getMessage()]
            assert len(reports) == 1
            assert "egressgroup" in reports[0].getMessage()

            kube_emulator.install(spec)
            kube_emulator.create(
                {
                    "apiVersion": spec.api_version,
                    "kind": "EgressGroup",
                    "metadata": {"name": "eg"},
                    "spec": {},
                }
            )
            fake_sleep.advance()
            await recorder.wait_count(2)
            assert recorder.names() == [("egressgroup", "eg", False), ("pod", "p", False)]
            assert not wired.watcher._task or not wired.watcher._task.done()


async def test_unreachable_api_is_retried_with_jittered_backoff(
    tmp_path: Path,
    start_watcher: conftest.StartWatcher,
    recorder: conftest.Recorder,
    fake_sleep: conftest.FakeSleep,
) -> None:
    port = _free_port()
    kubeconfig = kubeapi.write_kubeconfig(tmp_path / "late", server=f"http://127.0.0.1:{port}")
    kube = settings.KubernetesSettings(kubeconfig=str(kubeconfig))
    watch = config.WatcherSettings(watch_kinds=[subjects.Kind.NAMESPACE])
    async with start_watcher(kube_settings=kube, watcher_settings=watch, rand=lambda: 0.5):
        for count in range(1, 5):
            await fake_sleep.wait_sleeps(count)
            if count < 4:
                fake_sleep.advance()
        assert fake_sleep.delays == [0.375, 0.75, 1.5, 3.0]  # doubling, half of it jitter
        async with kubeapi.serve(port=port, kubeconfig_path=tmp_path / "kubeconfig") as api:
            fake_sleep.advance()
            await api.wait_for_watchers("namespaces", within=10)
            await recorder.wait_count(len(api.objects("namespaces")))


async def test_missing_kubeconfig_is_retried_not_a_crash(
    tmp_path: Path,
    kube_emulator: kubeapi.KubeAPI,
    start_watcher: conftest.StartWatcher,
    recorder: conftest.Recorder,
    fake_sleep: conftest.FakeSleep,
    caplog: pytest.LogCaptureFixture,
) -> None:
    path = tmp_path / "not-yet" / "kubeconfig"
    kube = settings.KubernetesSettings(kubeconfig=str(path))
    watch = config.WatcherSettings(watch_kinds=[subjects.Kind.NAMESPACE])
    with caplog.at_level(logging.WARNING, logger="tailwire.services.watcher"):
        async with start_watcher(kube_settings=kube, watcher_settings=watch):
            await fake_sleep.wait_sleeps(1)
            assert any("unreachable" in r.getMessage() for r in caplog.records)
            kubeapi.write_kubeconfig(path, server=kube_emulator.url)
            fake_sleep.advance()
            await conftest.wait_watching(kube_emulator, "namespaces")
            await recorder.wait_count(len(kube_emulator.objects("namespaces")))


async def test_failing_lists_and_empty_watches_are_backed_off(
    kube_emulator: kubeapi.KubeAPI,
    start_watcher: conftest.StartWatcher,
    recorder: conftest.Recorder,
    fake_sleep: conftest.FakeSleep,
) -> None:
    unavailable = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "etcdserver: leader changed",
        "reason": "ServiceUnavailable",
        "code": 503,
    }
    kube_emulator.kmock[kmock.action.LIST, kmock.resource("v1/pods")][:2] << 503 << unavailable
    # A server that ends every watch at once, without a single event: not a hot loop.
    kube_emulator.kmock[kmock.action.WATCH, kmock.resource("v1/pods")][:3] << b""
    kube_emulator.create(
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a", "namespace": "default"}}
    )
    watch = config.WatcherSettings(watch_kinds=[subjects.Kind.POD])
    async with start_watcher(watcher_settings=watch, rand=lambda: 0.0):
        await fake_sleep.wait_sleeps(1)
        fake_sleep.advance()
        await fake_sleep.wait_sleeps(2)
        fake_sleep.advance()
        await recorder.wait_count(1)  # the third list is served
        await fake_sleep.wait_sleeps(3)  # after the third empty watch
        assert fake_sleep.delays == [0.25, 0.5, 0.25]
        fake_sleep.advance()
        await conftest.wait_watching(kube_emulator, "pods")
        kube_emulator.create(
            {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "b", "namespace": "default"}}
        )
        await recorder.wait_count(2)
    assert recorder.names() == [("pod", "a", False), ("pod", "b", False)]
