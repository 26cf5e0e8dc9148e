"""One change is one trace across processes: the watcher's snapshot of a new group, the
renderer's key request and plan, the keyminter's minting and the nodeagent's apply all carry
the same trace id, read back from the spans every process exported over OTLP/HTTP."""

from __future__ import annotations

import asyncio

import pytest

from tailwire.shared import subjects
from tailwire.testing import system
from tests.e2e import conftest

pytestmark = pytest.mark.asyncio(loop_scope="package")

LABEL = {"e2e.tailwire.dev/traced": "true"}


def _group(name: str, *, namespace: str) -> dict[str, object]:
    return {
        "apiVersion": "tailscale.rajsingh.info/v1alpha1",
        "kind": "EgressGroup",
        "metadata": {"name": name},
        "spec": {
            "selector": {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
                "podSelector": {"matchLabels": LABEL},
            }
        },
    }


async def test_a_new_group_is_one_trace_from_watcher_to_nodeagent(
    whole_system: system.System,
) -> None:
    s = whole_system
    async with s.capture() as before:
        s.create_namespace("traced")
        pod = await s.create_member_pod(namespace="traced", name="worker-0", labels_=LABEL)
        # The renderer computes in the trace of the last change it received. The watcher
        # watches each kind on its own stream, so the pod's snapshot could reach the renderer
        # after the group's and the plan would travel in the pod's trace: let the pod's and
        # the namespace's snapshots arrive (and be read) first.
        for kind, namespace, name in (
            (subjects.Kind.NAMESPACE, None, "traced"),
            (subjects.Kind.POD, "traced", "worker-0"),
        ):
            ref = subjects.ObjectRef(kind=kind, namespace=namespace, name=name)
            await before.wait_for(subjects.cluster(ref), within=20)
        await asyncio.sleep(1.0)
    async with s.capture() as seen:
        s.apply(_group("traced", namespace="traced"))
        snapshot = await seen.wait_for(
            subjects.cluster(
                subjects.ObjectRef(kind=subjects.Kind.EGRESSGROUP, namespace=None, name="traced")
            )
        )
    trace_id = snapshot.trace_id
    assert trace_id is not None, snapshot.headers

    try:
        spans = await s.otlp.wait_for_trace(
            trace_id, services={"watcher", "renderer", "keyminter", "nodeagent"}, within=30
        )
    except TimeoutError:
        received = sorted({(sp.short_service, sp.name) for sp in s.otlp.trace(trace_id)})
        logs = "\n".join(f"--- {n}\n{p.log_tail(15)}" for n, p in s.processes.items())
        raise AssertionError(f"trace {trace_id} incomplete: {received}\n{logs}") from None
    services = {span.short_service for span in spans}
    assert {"watcher", "renderer", "keyminter", "nodeagent"} <= services
    # The ack the nodeagent published for this pod travels in the same trace.
    await s.wait_for_ack(node=pod.node, pod_uid=pod.uid, ok=conftest.stitched(), within=30)
