"""Every service does its job with exactly the NATS permissions `tailwire nats-config`
generates (issue 18, finding 3): a group with a member pod gets its key minted, its plan
applied and its status written, and nats-server refused nothing any service asked for. A
request a service needs but its user lacks would show in the server's log as a `Publish
Violation` or `Subscription Violation` of that user (the confinement test's deliberate
violations come from its own, unnamed connections, not from a service's)."""

from __future__ import annotations

import re

import pytest

from tailwire.shared import subjects
from tailwire.testing import system
from tests.e2e import conftest

pytestmark = pytest.mark.asyncio(loop_scope="package")

LABEL = {"e2e.tailwire.dev/permissions": "true"}
CENTRAL_USERS = ("watcher", "keyminter", "renderer", "dnsupdater")


def _violations_by_services(log: str) -> list[str]:
    services = re.compile(r'"\$G/user:(?:' + "|".join(CENTRAL_USERS) + r')"|:tailwire-[a-z]+" - ')
    return [line for line in log.splitlines() if "Violation" in line and services.search(line)]


async def test_every_service_works_and_nats_refused_none_of_them(
    whole_system: system.System,
) -> None:
    s = whole_system
    s.create_namespace("permitted")
    s.apply(
        {
            "apiVersion": "tailscale.rajsingh.info/v1alpha1",
            "kind": "EgressGroup",
            "metadata": {"name": "permitted"},
            "spec": {
                "selector": {
                    "namespaceSelector": {
                        "matchLabels": {"kubernetes.io/metadata.name": "permitted"}
                    },
                    "podSelector": {"matchLabels": LABEL},
                }
            },
        }
    )
    pod = await s.create_member_pod(namespace="permitted", name="worker-0", labels_=LABEL)
    owner = subjects.ObjectRef(kind=subjects.Kind.EGRESSGROUP, namespace=None, name="permitted")
    await s.wait_for_stored(subjects.keys_ready(owner), within=30)
    await s.wait_for_ack(node=pod.node, pod_uid=pod.uid, ok=conftest.stitched(), within=30)
    await s.wait_for_stored(subjects.status(owner), within=30)
    assert _violations_by_services(s.nats.log_path.read_text()) == []
