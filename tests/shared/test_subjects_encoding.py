"""Subjects: every builder round-trips through `parse`; tokens are reversible and safe."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tailwire.shared import errors, subjects

NODE = "ip-10-0-0-1.ec2.internal"


@given(st.text(min_size=1, max_size=300))
def test_any_name_round_trips_as_one_safe_token(name: str) -> None:
    token = subjects.encode_token(name)
    assert subjects.decode_token(token) == name
    assert not set(token) & {".", "*", ">", " ", "\t", "\n", "\r"}
    assert token != subjects.NO_NAMESPACE


def test_dotted_node_name_is_one_token() -> None:
    subject = subjects.node_plan(NODE)
    assert subject == "tailwire.v1.node.ip-10-0-0-1~2Eec2~2Einternal.plan"
    assert subjects.parse(subject) == subjects.Parsed(area="node", event="plan", node=NODE)


@pytest.mark.parametrize(
    "subject",
    [
        subjects.cluster(subjects.ObjectRef(kind=subjects.Kind.POD, namespace="a", name="b.c")),
        subjects.status(
            subjects.ObjectRef(kind=subjects.Kind.EGRESSGROUP, namespace=None, name="g")
        ),
        subjects.keys_request(
            subjects.ObjectRef(kind=subjects.Kind.EGRESSGROUP, namespace=None, name="g")
        ),
        subjects.keys_failed(
            subjects.ObjectRef(kind=subjects.Kind.EGRESSGROUP, namespace=None, name="g")
        ),
        subjects.node_ack(NODE),
        subjects.gateway_config("payments"),
        subjects.dns_changed("sudhanva.me."),
        subjects.deadletter("renderer"),
    ],
)
def test_every_builder_parses_back(subject: str) -> None:
    parsed = subjects.parse(subject)
    assert parsed.area == subject.split(".")[2]


def test_cluster_scoped_object_uses_underscore_and_real_underscore_is_escaped() -> None:
    ref = subjects.ObjectRef(kind=subjects.Kind.NODE, namespace=None, name="n1")
    assert subjects.cluster(ref) == "tailwire.v1.cluster.node._.n1"
    odd = subjects.ObjectRef(kind=subjects.Kind.POD, namespace="_", name="x")
    assert subjects.parse(subjects.cluster(odd)).ref == odd


def test_zone_dots_are_encoded_and_trailing_dot_dropped() -> None:
    assert subjects.dns_changed("example.com.") == "tailwire.v1.dns.example~2Ecom.changed"


@pytest.mark.parametrize(
    "subject",
    [
        "foo.bar",
        "tailwire.v1.cluster.pod.a",
        "tailwire.v1.cluster.widget.a.b",
        "tailwire.v1.node.A.plan",
        "tailwire.v1.node.x.frobnicate",
        "tailwire.v1.node.~ZZ.plan",
    ],
)
def test_foreign_or_malformed_subjects_are_refused(subject: str) -> None:
    with pytest.raises(errors.SubjectError):
        subjects.parse(subject)


def test_empty_token_is_refused() -> None:
    with pytest.raises(errors.SubjectError):
        subjects.encode_token("")
