"""A restarted watcher publishes nothing consumers already have (it reads the last snapshot
of every subject back from TAILWIRE_CLUSTER) and misses nothing that changed while it was
down: changed and new objects, and tombstones for the deleted ones."""

from __future__ import annotations

from nats.aio.client import Client

from tailwire.services.watcher import config
from tailwire.shared import bus, subjects
from tailwire.testing import kubeapi
from tests.watcher import conftest

SETTINGS = config.WatcherSettings(
    watch_kinds=[subjects.Kind.POD, subjects.Kind.NAMESPACE, subjects.Kind.EGRESSGROUP]
)


def _pod(name: str) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"}}


async def _stored(nats_client: Client) -> int:
    info = await nats_client.jetstream().stream_info(bus.CLUSTER_STREAM)
    return int(info.state.last_seq)


async def test_restart_publishes_only_what_changed_while_down(
    kube_emulator: kubeapi.KubeAPI,
    start_watcher: conftest.StartWatcher,
    recorder: conftest.Recorder,
    nats_client: Client,
) -> None:
    for name in ("same", "churn", "change", "remove"):
        kube_emulator.create(_pod(name))
    kube_emulator.create(
        {
            "apiVersion": "tailscale.rajsingh.info/v1alpha1",
            "kind": "EgressGroup",
            "metadata": {"name": "eg"},
            "spec": {"mode": "cgnat"},
        }
    )
    async with start_watcher(watcher_settings=SETTINGS) as wired:
        await conftest.wait_watching(kube_emulator, "pods", "namespaces", "egressgroups")
        first = 5 + len(kube_emulator.objects("namespaces"))
        await recorder.wait_count(first)
        await wired.watcher.drain()
    stored = await _stored(nats_client)

    # While the watcher is down.
    kube_emulator.patch_status(
        "pods",
        name="churn",
        namespace="default",
        status={"conditions": [{"type": "Ready", "status": "True"}]},
    )
    kube_emulator.patch(
        "pods", name="change", namespace="default", patch={"metadata": {"labels": {"v": "2"}}}
    )
    kube_emulator.delete("pods", name="remove", namespace="default")
    kube_emulator.create(_pod("new"))
    kube_emulator.delete("egressgroups", name="eg")
    kube_emulator.expire_history()

    async with start_watcher(watcher_settings=SETTINGS) as wired:
        await conftest.wait_watching(kube_emulator, "pods", "namespaces", "egressgroups")
        await recorder.wait_count(first + 4)
        await wired.watcher.drain()
        assert recorder.names(first) == [
            ("egressgroup", "eg", True),
            ("pod", "change", False),
            ("pod", "new", False),
            ("pod", "remove", True),
        ]
        assert await _stored(nats_client) == stored + 4

    # A second restart with nothing changed publishes nothing at all.
    async with start_watcher(watcher_settings=SETTINGS) as wired:
        await conftest.wait_watching(kube_emulator, "pods", "namespaces", "egressgroups")
        kube_emulator.create(_pod("sentinel"))  # after the lists: proves they have run
        await recorder.wait_count(first + 5)
        await wired.watcher.drain()
    assert recorder.names(first + 4) == [("pod", "sentinel", False)]
    assert await _stored(nats_client) == stored + 5


async def test_duplicate_publish_of_the_same_version_is_dropped_by_the_stream(
    kube_emulator: kubeapi.KubeAPI,
    start_watcher: conftest.StartWatcher,
    recorder: conftest.Recorder,
    nats_client: Client,
) -> None:
    """The second line of defence: a publish repeated with the same `<uid>:<rv>` (a watcher
    that crashed before recording it) is stored once."""
    kube_emulator.create(_pod("a"))
    async with start_watcher(
        watcher_settings=config.WatcherSettings(watch_kinds=[subjects.Kind.POD])
    ) as wired:
        await conftest.wait_watching(kube_emulator, "pods")
        await recorder.wait_count(1)
        await wired.watcher.drain()
        stored = await _stored(nats_client)
        snapshot = recorder.messages[0].snapshot
        await wired.watcher.publisher.publish(snapshot)
        await recorder.wait_count(2)
        assert await _stored(nats_client) == stored
