"""Group membership, as properties (hypothesis): selectors, exclusions, conflicts, order."""

from __future__ import annotations

import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tailwire.services.renderer.egress import groups
from tailwire.shared.events import cluster
from tailwire.shared.resources import common, egressgroup

KEYS = ("app", "tier", "team")
VALUES = ("a", "b", "c")
NAMESPACES = ("payments", "shop", "tailwire-system")
GATEWAY_NS = "tailwire-system"

labels_st = st.dictionaries(st.sampled_from(KEYS), st.sampled_from(VALUES), max_size=3)
requirement_st = st.one_of(
    st.builds(
        common.LabelSelectorRequirement,
        key=st.sampled_from(KEYS),
        operator=st.sampled_from(["In", "NotIn"]),
        values=st.lists(st.sampled_from(VALUES), min_size=1, max_size=2),
    ),
    st.builds(
        common.LabelSelectorRequirement,
        key=st.sampled_from(KEYS),
        operator=st.sampled_from(["Exists", "DoesNotExist"]),
    ),
)
selector_st = st.one_of(
    st.none(),
    st.builds(
        common.LabelSelector,
        match_labels=labels_st,
        match_expressions=st.lists(requirement_st, max_size=2),
    ),
)


@st.composite
def group_st(draw: st.DrawFn, index: int) -> groups.Group:
    spec = egressgroup.EgressGroupSpec(
        selector=egressgroup.Selector(
            namespace_selector=draw(selector_st), pod_selector=draw(selector_st)
        )
    )
    return groups.Group(
        name=f"g{draw(st.integers(0, 9))}-{index}",
        uid=f"uid-g{index}",
        generation=1,
        spec=spec,
        problems=(),
        deleting=draw(st.booleans()) and index == 0,
    )


@st.composite
def pod_st(draw: st.DrawFn, index: int) -> cluster.PodSnapshot:
    return cluster.PodSnapshot(
        meta=cluster.Meta(
            uid=f"uid-p{index}",
            namespace=draw(st.sampled_from(NAMESPACES)),
            name=f"pod-{index}",
            labels=draw(labels_st),
        ),
        node_name=draw(st.sampled_from(["n1", "n2", None])),
        phase=draw(st.sampled_from(["Running", "Pending", "Succeeded"])),
        host_network=draw(st.booleans()),
    )


world_st = st.tuples(
    st.integers(0, 4).flatmap(lambda n: st.tuples(*(group_st(i) for i in range(n)))),
    st.integers(0, 12).flatmap(lambda n: st.tuples(*(pod_st(i) for i in range(n)))),
    st.fixed_dictionaries(dict.fromkeys(NAMESPACES, labels_st)),
)


def _compute(
    gs: list[groups.Group], pods: list[cluster.PodSnapshot], ns_labels: dict[str, dict[str, str]]
) -> groups.Membership:
    return groups.compute_membership(
        groups=gs, pods=pods, namespace_labels=ns_labels, gateway_namespace=GATEWAY_NS
    )


@settings(max_examples=150, deadline=None)
@given(world=world_st, seed=st.integers(0, 1000))
def test_each_pod_goes_to_the_first_selecting_group_by_name(
    world: tuple[Any, Any, Any], seed: int
) -> None:
    gs, pods, ns_labels = list(world[0]), list(world[1]), world[2]
    membership = _compute(gs, pods, ns_labels)
    owner = {p.meta.uid: g for g, members in membership.members.items() for p in members}
    # A pod is in at most one group.
    assert sum(len(m) for m in membership.members.values()) == len(owner)
    active = sorted((g for g in gs if g.active), key=lambda g: g.name)
    for pod in pods:
        assert pod.meta.namespace is not None
        selecting = [
            g.name
            for g in active
            if g.spec is not None
            and groups.selects(
                g.spec, pod_labels=pod.meta.labels, namespace_labels=ns_labels[pod.meta.namespace]
            )
        ]
        ok = (
            not pod.host_network
            and pod.node_name is not None
            and pod.meta.namespace != GATEWAY_NS
            and pod.phase != "Succeeded"
        )
        if not ok or not selecting:
            assert pod.meta.uid not in owner
            continue
        assert owner[pod.meta.uid] == selecting[0]
        ref = f"{pod.meta.namespace}/{pod.meta.name}"
        for loser in selecting[1:]:
            assert (ref, selecting[0]) in membership.conflicts[loser]
    # Input order does not matter.
    shuffler = random.Random(seed)
    shuffler.shuffle(gs)
    shuffler.shuffle(pods)
    assert _compute(gs, pods, ns_labels) == membership


@settings(max_examples=100, deadline=None)
@given(selector=selector_st, labels=labels_st)
def test_selector_matches_as_kubernetes_does(
    selector: common.LabelSelector | None, labels: dict[str, str]
) -> None:
    spec = egressgroup.EgressGroupSpec(selector=egressgroup.Selector(pod_selector=selector))
    expected = selector is None or (
        all(labels.get(k) == v for k, v in selector.match_labels.items())
        and all(
            (r.operator == "In" and labels.get(r.key) in r.values)
            or (r.operator == "NotIn" and labels.get(r.key) not in r.values)
            or (r.operator == "Exists" and r.key in labels)
            or (r.operator == "DoesNotExist" and r.key not in labels)
            for r in selector.match_expressions
        )
    )
    assert groups.selects(spec, pod_labels=labels, namespace_labels={}) == expected
