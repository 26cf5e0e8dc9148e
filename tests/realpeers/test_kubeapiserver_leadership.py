"""Leader election (shared/leadership.py) against the real kube-apiserver's optimistic
concurrency, which the emulator does not have (it keeps no resourceVersion).

Six candidates for one Lease, each with its own client, attempt at the same moment: on
creation (one create wins, the rest get 409 or find it held), on renewal, after the leader
vanished without releasing (every standby's clock past the lease: they all replace at the
resourceVersion they read, and the server lets exactly one write through), and after a
release. The clock is injected, so "the lease expired" happens when the test says.
"""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Sequence

import pytest

from tailwire.shared import leadership
from tailwire.testing import kubeapiserver

pytestmark = pytest.mark.real_peers

NAMESPACE = "leadership-tests"
TIMING = leadership.Timing(lease_seconds=10, renew_deadline=7, retry_seconds=2)


async def attempt(electors: Sequence[leadership.Elector]) -> list[bool]:
    return list(await asyncio.gather(*(e.try_acquire_or_renew() for e in electors)))


async def test_one_leader_at_a_time_under_contention(
    kube_apiserver: kubeapiserver.KubeAPIServer,
) -> None:
    kube_apiserver.create_namespace(NAMESPACE)
    now = [datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)]
    electors = [
        leadership.Elector(
            name="contended",
            namespace=NAMESPACE,
            identity=f"candidate-{i}",
            api_client_factory=kube_apiserver.api_client,
            timing=TIMING,
            clock=lambda: now[0],
        )
        for i in range(6)
    ]
    path = f"/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/leases/contended"
    try:
        # Nobody holds it: every candidate creates it at once; one wins.
        won = await attempt(electors)
        assert won.count(True) == 1, won
        leader = electors[won.index(True)]
        lease = kube_apiserver.request("GET", path)
        assert lease["spec"]["holderIdentity"] == leader.identity

        # The leader renews; the others see it held.
        now[0] += datetime.timedelta(seconds=TIMING.retry_seconds)
        assert await attempt(electors) == [e is leader for e in electors]

        # The leader vanishes without releasing. The standbys look once more (some read
        # the Lease before the renewal: a record they see change starts their wait again),
        # then on every standby's clock the lease runs out. They all replace it at the
        # version they read: one write gets through.
        standbys = [e for e in electors if e is not leader]
        assert await attempt(standbys) == [False] * len(standbys)
        now[0] += datetime.timedelta(seconds=TIMING.lease_seconds + 1)
        won = await attempt(standbys)
        assert won.count(True) == 1, won
        successor = standbys[won.index(True)]
        lease = kube_apiserver.request("GET", path)
        assert lease["spec"]["holderIdentity"] == successor.identity
        assert lease["spec"]["leaseTransitions"] == 1
        # The old leader, back, finds it held by another.
        assert not await leader.try_acquire_or_renew()

        # A release hands it over at once: one of the others takes it.
        await successor.release()
        assert kube_apiserver.request("GET", path)["spec"].get("holderIdentity", "") == ""
        others = [e for e in electors if e is not successor]
        won = await attempt(others)
        assert won.count(True) == 1, won
        final = others[won.index(True)]
        assert kube_apiserver.request("GET", path)["spec"]["holderIdentity"] == final.identity
    finally:
        for elector in electors:
            await elector.stop()
