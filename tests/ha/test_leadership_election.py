"""Leader election on a Lease of the emulated Kubernetes API, on a fake clock."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
from collections.abc import AsyncIterator, Callable

import pytest
from kubernetes_asyncio import client

from tailwire.shared import errors, leadership
from tailwire.testing import kubeapi

NAMESPACE = "tailwire-system"
LEASE = "tailwire-renderer"
TIMING = leadership.Timing(lease_seconds=10, renew_deadline=7, retry_seconds=2)


@dataclasses.dataclass
class FakeClock:
    now: datetime.datetime = dataclasses.field(
        default_factory=lambda: datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    )

    def __call__(self) -> datetime.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += datetime.timedelta(seconds=seconds)

    async def sleep(self, seconds: float) -> None:
        self.advance(seconds)
        await asyncio.sleep(0)


@pytest.fixture
async def candidates(
    kube_emulator: kubeapi.KubeAPI,
) -> AsyncIterator[Callable[[str, FakeClock], leadership.Elector]]:
    kube_emulator.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    made: list[leadership.Elector] = []

    def make(identity: str, clock: FakeClock) -> leadership.Elector:
        async def open_client() -> client.ApiClient:
            return await kube_emulator.api_client()

        elector = leadership.Elector(
            name=LEASE,
            namespace=NAMESPACE,
            identity=identity,
            api_client_factory=open_client,
            timing=TIMING,
            clock=clock,
            sleep=clock.sleep,
        )
        made.append(elector)
        return elector

    yield make
    for elector in made:
        await elector.stop()


def holder(api: kubeapi.KubeAPI) -> str:
    lease = api.get("leases.coordination.k8s.io", name=LEASE, namespace=NAMESPACE)
    assert lease is not None
    return str(lease["spec"].get("holderIdentity") or "")


async def test_first_candidate_creates_the_lease_and_the_second_stands_by(
    kube_emulator: kubeapi.KubeAPI,
    candidates: Callable[[str, FakeClock], leadership.Elector],
) -> None:
    clock = FakeClock()
    a, b = candidates("a", clock), candidates("b", clock)

    assert await a.try_acquire_or_renew()
    assert not await b.try_acquire_or_renew()

    lease = kube_emulator.get("leases.coordination.k8s.io", name=LEASE, namespace=NAMESPACE)
    assert lease is not None
    assert lease["spec"]["holderIdentity"] == "a"
    assert lease["spec"]["leaseDurationSeconds"] == 10
    assert lease["spec"]["renewTime"] == "2026-01-01T00:00:00.000000Z"


async def test_a_renewing_leader_keeps_the_lease(
    kube_emulator: kubeapi.KubeAPI,
    candidates: Callable[[str, FakeClock], leadership.Elector],
) -> None:
    clock = FakeClock()
    a, b = candidates("a", clock), candidates("b", clock)
    assert await a.try_acquire_or_renew()
    for _ in range(15):  # 30 s: three lease durations
        clock.advance(2)
        assert await a.try_acquire_or_renew()
        assert not await b.try_acquire_or_renew()
    assert holder(kube_emulator) == "a"


async def test_a_standby_takes_over_once_the_record_is_unchanged_for_a_lease_duration(
    kube_emulator: kubeapi.KubeAPI,
    candidates: Callable[[str, FakeClock], leadership.Elector],
) -> None:
    clock = FakeClock()
    a, b = candidates("a", clock), candidates("b", clock)
    assert await a.try_acquire_or_renew()
    assert not await b.try_acquire_or_renew()  # b first sees the record now

    # a dies: the record stops changing. b measures on its own clock from when it saw it.
    clock.advance(9.9)
    assert not await b.try_acquire_or_renew()
    clock.advance(0.2)
    assert await b.try_acquire_or_renew()

    lease = kube_emulator.get("leases.coordination.k8s.io", name=LEASE, namespace=NAMESPACE)
    assert lease is not None
    assert lease["spec"]["holderIdentity"] == "b"
    assert lease["spec"]["leaseTransitions"] == 1
    # a, back from the dead, finds b there and does not take the lease back.
    assert not await a.try_acquire_or_renew()
    assert holder(kube_emulator) == "b"


async def test_a_stale_renew_time_in_the_lease_does_not_matter_only_the_observed_change(
    kube_emulator: kubeapi.KubeAPI,
    candidates: Callable[[str, FakeClock], leadership.Elector],
) -> None:
    # The holder's clock is an hour behind: a standby must not take over at once.
    behind = FakeClock(now=datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC))
    ahead = FakeClock(now=behind.now + datetime.timedelta(hours=1))
    a, b = candidates("a", behind), candidates("b", ahead)
    assert await a.try_acquire_or_renew()
    assert not await b.try_acquire_or_renew()
    for _ in range(5):
        behind.advance(2)
        ahead.advance(2)
        assert await a.try_acquire_or_renew()
        assert not await b.try_acquire_or_renew()


async def test_a_released_lease_is_taken_at_once(
    kube_emulator: kubeapi.KubeAPI,
    candidates: Callable[[str, FakeClock], leadership.Elector],
) -> None:
    clock = FakeClock()
    a, b = candidates("a", clock), candidates("b", clock)
    await a.start()
    async with asyncio.timeout(10):
        await a.acquired.wait()
    assert not await b.try_acquire_or_renew()

    await a.stop()

    assert holder(kube_emulator) == ""
    assert await b.try_acquire_or_renew()
    assert holder(kube_emulator) == "b"


async def test_the_leader_notices_another_holder_and_reports_the_loss(
    kube_emulator: kubeapi.KubeAPI,
    candidates: Callable[[str, FakeClock], leadership.Elector],
) -> None:
    clock = FakeClock()
    a = candidates("a", clock)
    lost: list[str] = []
    a.on_lost = lambda: lost.append("lost")
    await a.start()
    async with asyncio.timeout(10):
        await a.acquired.wait()

    # Someone else writes the lease (as a standby would after a partition).
    kube_emulator.patch(
        "leases.coordination.k8s.io",
        name=LEASE,
        namespace=NAMESPACE,
        patch={"spec": {"holderIdentity": "intruder"}},
    )
    async with asyncio.timeout(10):
        await a.lost.wait()

    assert lost == ["lost"]
    assert not a.leading
    assert holder(kube_emulator) == "intruder"


async def test_a_leader_that_cannot_renew_gives_up_after_the_renew_deadline(
    kube_emulator: kubeapi.KubeAPI,
    candidates: Callable[[str, FakeClock], leadership.Elector],
) -> None:
    clock = FakeClock()
    a = candidates("a", clock)
    await a.start()
    async with asyncio.timeout(10):
        await a.acquired.wait()

    kube_emulator.delete("namespaces", name=NAMESPACE)  # every lease call now fails
    kube_emulator.uninstall("leases.coordination.k8s.io")
    async with asyncio.timeout(10):
        await a.lost.wait()

    # Given up within the renew deadline plus one retry period, before the lease expires.
    assert a.renewed_at is not None
    waited = (clock.now - a.renewed_at).total_seconds()
    assert TIMING.renew_deadline <= waited <= TIMING.renew_deadline + TIMING.retry_seconds
    assert waited < TIMING.lease_seconds


def test_timing_must_leave_room_to_renew() -> None:
    with pytest.raises(errors.ConfigurationError, match="renew deadline"):
        leadership.Timing(lease_seconds=5, renew_deadline=7, retry_seconds=2)
