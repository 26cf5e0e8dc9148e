"""Issue 18 (low): an EgressGroup without `spec.selector.namespaceSelector` enrols the
matching pods of every namespace, so anyone who may label a pod anywhere could put it on the
tailnet. The schema says so, and so does the status: condition Scoped, False with reason
AllNamespaces naming the field, True once a namespaceSelector limits the members."""

from __future__ import annotations

import datetime
from typing import Any

from tailwire.services.renderer import view
from tailwire.services.renderer.egress import rendering
from tailwire.shared.events import base, cluster
from tailwire.shared.resources import crds
from tests.renderer import helpers

NOW = datetime.datetime(2026, 12, 2, tzinfo=datetime.UTC)
LABELS = {"tailgate.dev/egress": "true"}


def _namespace(name: str, labels: dict[str, str]) -> cluster.NamespaceSnapshot:
    return cluster.NamespaceSnapshot(
        meta=cluster.Meta(uid=f"ns-{name}", name=name, resource_version="1", labels=labels)
    )


def status_of(spec: dict[str, Any]) -> tuple[int, base.Condition]:
    """Members and the Scoped condition of group `peers`, with one labelled pod in the
    group's own namespace and one in a tenant's."""
    v = view.ClusterView()
    for obj in (
        helpers.node("node-a"),
        _namespace("payments", {"team": "payments"}),
        _namespace("tenant-x", {"team": "x"}),
        helpers.pod("api-0", ns="payments", node_name="node-a", labels=LABELS),
        helpers.pod("intruder", ns="tenant-x", node_name="node-a", labels=LABELS),
        helpers.group("peers", spec),
    ):
        v.apply(obj)
    members = len(rendering.render_egress(view=v, opts=helpers.OPTS).groups["peers"].members)
    return members, helpers.conditions_on_node_a(v, "peers", now=NOW)["Scoped"]


def test_a_group_without_a_namespace_selector_says_it_takes_every_namespace() -> None:
    members, scoped = status_of({"selector": {"podSelector": {"matchLabels": LABELS}}})
    assert members == 2  # the tenant's labelled pod joined: this is what the status warns of
    assert (scoped.status, scoped.reason) == ("False", "AllNamespaces")
    assert "spec.selector.namespaceSelector is unset" in scoped.message


def test_a_namespace_selector_scopes_the_members_and_the_status_says_so() -> None:
    members, scoped = status_of(
        {
            "selector": {
                "namespaceSelector": {"matchLabels": {"team": "payments"}},
                "podSelector": {"matchLabels": LABELS},
            }
        }
    )
    assert members == 1
    assert (scoped.status, scoped.reason) == ("True", "NamespaceSelector")


def test_the_schema_warns_where_the_selector_is_written() -> None:
    crd = next(c for c in crds.CRDS if c.kind == "EgressGroup")
    schema = crds.render(crd)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    selector = schema["properties"]["spec"]["properties"]["selector"]["properties"]
    assert "every namespace" in selector["namespaceSelector"]["description"]
