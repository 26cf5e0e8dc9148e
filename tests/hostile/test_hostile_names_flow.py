"""Names as hostile as Kubernetes allows flow through the whole system: a 253-character
dotted EgressGroup name, a 63-character namespace, a 253-character dotted pod name, label
values at their 63-character limit with dots and underscores, a unicode annotation value.
Every subject decodes back to the object's name, the pod is planned, stitched and acked, the
group's status and status summary are written under its own name, its key is minted, and
every object tailwire wrote into the API has a valid name and valid labels."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tailwire.shared import subjects
from tailwire.shared.events import keys, status
from tailwire.shared.k8s import labels, names
from tailwire.testing import system
from tests.failure import helpers

GROUP = ".".join(["g" * 62, "dotted-name", "x" * 62, "y" * 62, "z" * 52])
NAMESPACE = "ns-" + "n" * 60
POD = ".".join(["p" * 63, "q" * 63, "r" * 63, "s" * 61])
VALUE = "v." + "_" * 3 + "-" + "w" * 56 + "e"
NOTE = "ünïcødé ✓ — 名前 \u202e"
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_NAME = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
MANAGED_KINDS = ("daemonsets", "configmaps", "secrets")


def _valid_label(key: str, value: str) -> str | None:
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not DNS_SUBDOMAIN.match(prefix)):
        return f"label key prefix {prefix!r}"
    if not name or len(name) > 63 or not LABEL_NAME.match(name):
        return f"label key name {name!r}"
    if len(value) > 63 or not LABEL_NAME.match(value):
        return f"label value {value!r} of {key}"
    return None


def _problems(obj: dict[str, Any]) -> list[str]:
    meta = obj["metadata"]
    found = []
    if len(meta["name"]) > 253 or not DNS_SUBDOMAIN.match(meta["name"]):
        found.append(f"name {meta['name']!r}")
    for key, value in (meta.get("labels") or {}).items():
        problem = _valid_label(key, value)
        if problem:
            found.append(problem)
    return [f"{obj['kind']} {meta['name'][:40]}...: {p}" for p in found]


def test_the_names_are_as_long_as_kubernetes_allows() -> None:
    assert len(GROUP) == 253
    assert len(POD) == 253
    assert len(NAMESPACE) == 63
    assert len(VALUE) == 63
    assert DNS_SUBDOMAIN.match(GROUP)
    assert DNS_SUBDOMAIN.match(POD)
    assert _valid_label("example.test/key", VALUE) is None


@pytest.mark.timeout(90)
async def test_hostile_names_flow_through_subjects_plans_and_status() -> None:
    async with helpers.whole_system() as s, s.capture() as seen:
        assert s.kube is not None
        s.create_namespace(NAMESPACE)
        s.apply(
            {
                "apiVersion": "tailscale.rajsingh.info/v1alpha1",
                "kind": "EgressGroup",
                "metadata": {"name": GROUP, "annotations": {"tailwire.dev/note": NOTE}},
                "spec": {"selector": {"podSelector": {"matchLabels": {"tier": VALUE}}}},
            }
        )
        pod = await s.create_member_pod(namespace=NAMESPACE, name=POD, labels_={"tier": VALUE})
        ack = await helpers.converged(s, live={pod.uid: pod}, gone=set(), within=40)
        assert ack.node == helpers.NODE
        group_status = await s.wait_for_group_status(
            GROUP, lambda st: st.get("matchedPods") == 1, within=30
        )
        assert group_status["matchedPods"] == 1
        group_ref = subjects.ObjectRef(kind=subjects.Kind.EGRESSGROUP, namespace=None, name=GROUP)
        summary_message = await seen.wait_for(subjects.status(group_ref), within=20)
        ready_message = await seen.wait_for(subjects.keys_ready(group_ref), within=20)
        secret = s.kube.get(
            "secrets", name=names.authkey_secret(GROUP), namespace=system.GATEWAY_NAMESPACE
        )
        written = [
            obj
            for kind in MANAGED_KINDS
            for obj in s.kube.objects(kind)
            if (obj["metadata"].get("labels") or {}).get(labels.MANAGED_BY)
            == labels.MANAGED_BY_VALUE
        ]
        node = s.kube.get("nodes", name=helpers.NODE)

    # Every subject is one of ours and encodes its object's name reversibly.
    for message in seen.messages:
        parsed = subjects.parse(message.subject)
        if parsed.area == "cluster" and parsed.ref is not None:
            assert subjects.cluster(parsed.ref) == message.subject
            body = message.data.decode()
            assert f'"name":"{parsed.ref.name}"' in body, message.subject
    pod_subject = subjects.cluster(
        subjects.ObjectRef(kind=subjects.Kind.POD, namespace=NAMESPACE, name=POD)
    )
    assert seen.on(pod_subject), "the pod's snapshot was not on its subject"
    summary = status.StatusSummary.model_validate_json(summary_message.data)
    assert (summary.kind.lower(), summary.name) == ("egressgroup", GROUP)
    ready = keys.KeyReady.model_validate_json(ready_message.data)
    assert ready.owner.name == GROUP
    assert secret is not None
    # What tailwire wrote into the API is valid Kubernetes, however long the group's name.
    assert written, "no managed object was written"
    problems = [
        p
        for obj in [*written, node or {"kind": "Node", "metadata": {"name": "?"}}]
        for p in _problems(obj)
    ]
    assert not problems, problems


@settings(max_examples=200)
@given(st.text(max_size=300))
def test_any_name_becomes_a_stable_valid_label_value(name: str) -> None:
    value = labels.label_value(name)
    assert _valid_label("example.test/key", value) is None, value
    assert labels.label_value(name) == value
    if _valid_label("example.test/key", name) is None:
        assert value == name
