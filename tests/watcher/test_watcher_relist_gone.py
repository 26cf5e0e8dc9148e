"""Resilience of the watch: a 410 Gone relists and publishes exactly the missed changes
(tombstones included); bookmarks move the resume point; a dropped watch resumes from the last
version without a relist; a periodic resync republishes nothing when nothing changed."""

from __future__ import annotations

import prometheus_client

from tailwire.services.watcher import config
from tailwire.shared import subjects
from tailwire.testing import kubeapi
from tests.watcher import conftest

PODS = config.WatcherSettings(watch_kinds=[subjects.Kind.POD])


def _pod(name: str, **labels: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": labels},
    }


def _relists(reason: str) -> float:
    value = prometheus_client.REGISTRY.get_sample_value(
        "tailwire_watcher_relists_total", {"kind": "pod", "reason": reason}
    )
    return value or 0.0


async def test_410_relists_and_publishes_exactly_the_missed_changes(
    kube_emulator: kubeapi.KubeAPI,
    start_watcher: conftest.StartWatcher,
    recorder: conftest.Recorder,
) -> None:
    for name in ("keep", "change", "remove"):
        kube_emulator.create(_pod(name))
    async with start_watcher(watcher_settings=PODS) as wired:
        await conftest.wait_watching(kube_emulator, "pods")
        await recorder.wait_count(3)
        mark, expired = len(recorder.messages), _relists("expired")
        # All in one step of the loop: the watch ends before it could see any of the changes,
        # and the history it would resume from is compacted away.
        assert kube_emulator.disconnect_watches("pods") == 1
        kube_emulator.patch(
            "pods", name="change", namespace="default", patch={"metadata": {"labels": {"v": "2"}}}
        )
        kube_emulator.patch_status(
            "pods", name="keep", namespace="default", status={"conditions": [{"type": "Ready"}]}
        )
        kube_emulator.delete("pods", name="remove", namespace="default")
        kube_emulator.create(_pod("new"))
        kube_emulator.expire_history()

        await recorder.wait_count(mark + 3)
        await kube_emulator.wait_for_watchers("pods")
        await wired.watcher.drain()
        assert recorder.names(mark) == [
            ("pod", "change", False),
            ("pod", "new", False),
            ("pod", "remove", True),
        ]
        assert _relists("expired") == expired + 1
        mirror = wired.watcher.mirrors[0]
        assert mirror.resource_version == kube_emulator.resource_version

        # The next changes arrive live again, on the new watch.
        kube_emulator.create(_pod("after"))
        await recorder.wait_count(mark + 4)
        assert recorder.messages[-1].snapshot.meta.name == "after"
        assert len(recorder.messages) == mark + 4


async def test_forced_410_on_resume_relists_without_republishing(
    kube_emulator: kubeapi.KubeAPI,
    start_watcher: conftest.StartWatcher,
    recorder: conftest.Recorder,
) -> None:
    kube_emulator.create(_pod("a"))
    async with start_watcher(watcher_settings=PODS) as wired:
        await conftest.wait_watching(kube_emulator, "pods")
        await recorder.wait_count(1)
        expired = _relists("expired")
        kube_emulator.force_gone_next_watch("pods")
        kube_emulator.disconnect_watches("pods")
        kube_emulator.create(_pod("b"))  # after the disconnect: found by the relist
        await recorder.wait_count(2)
        await wired.watcher.drain()
        assert recorder.names() == [("pod", "a", False), ("pod", "b", False)]
        assert _relists("expired") == expired + 1


async def test_bookmarks_and_reconnects_resume_from_the_last_version(
    kube_emulator: kubeapi.KubeAPI,
    start_watcher: conftest.StartWatcher,
    recorder: conftest.Recorder,
) -> None:
    kube_emulator.create(_pod("a"))
    kube_emulator.create(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "noise", "namespace": "default"},
        }
    )
    async with start_watcher(watcher_settings=PODS):
        await conftest.wait_watching(kube_emulator, "pods")
        await recorder.wait_count(1)
        starts = _relists("start") + _relists("expired") + _relists("resync")
        for round_ in range(3):  # other resources move the version on; pods see bookmarks
            kube_emulator.patch(
                "configmaps",
                name="noise",
                namespace="default",
                patch={"data": {"round": str(round_)}},
            )
        bookmarked = kube_emulator.resource_version
        assert kube_emulator.send_bookmarks("pods") == 1
        kube_emulator.disconnect_watches("pods")  # after the bookmark, in the same stream
        kube_emulator.create(_pod("b"))  # seen by the watch resumed from the bookmark
        await recorder.wait_count(2)
        assert any(
            r.verb == "watch" and r.params.get("resourceVersion") == bookmarked
            for r in kube_emulator.requests
        )

        kube_emulator.disconnect_watches("pods")
        kube_emulator.create(_pod("c"))  # while reconnecting: replayed from the history
        await recorder.wait_count(3)
        assert _relists("start") + _relists("expired") + _relists("resync") == starts
        assert recorder.names() == [("pod", "a", False), ("pod", "b", False), ("pod", "c", False)]


async def test_periodic_resync_republishes_nothing_unchanged(
    kube_emulator: kubeapi.KubeAPI,
    start_watcher: conftest.StartWatcher,
    recorder: conftest.Recorder,
) -> None:
    for name in ("a", "b"):
        kube_emulator.create(_pod(name))
    now = [0.0]
    settings = config.WatcherSettings(watch_kinds=[subjects.Kind.POD], watch_resync_interval=60)
    async with start_watcher(watcher_settings=settings, clock=lambda: now[0]) as wired:
        await conftest.wait_watching(kube_emulator, "pods")
        await recorder.wait_count(2)
        resyncs = _relists("resync")
        now[0] = 61.0  # the resync is due; the next event ends the watch and a relist follows
        kube_emulator.patch_status(
            "pods", name="a", namespace="default", status={"conditions": [{"type": "Ready"}]}
        )
        kube_emulator.create(_pod("c"))  # after the churn: the relist has run by then
        await recorder.wait_count(3)
        await wired.watcher.drain()
        assert recorder.names() == [("pod", "a", False), ("pod", "b", False), ("pod", "c", False)]
        assert _relists("resync") == resyncs + 1
