"""The pure part of the watcher: normalization keeps only what consumers need, names the
field of a bad object, compares content without the resourceVersion, diffs a relist, and
paces retries."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from tailwire.services.watcher import domain
from tailwire.shared import subjects
from tailwire.shared.events import cluster

POD: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {
        "name": "web-1",
        "namespace": "shop",
        "uid": "u-1",
        "resourceVersion": "41",
        "generation": 1,
        "labels": {"app": "web"},
        "annotations": {
            "kubectl.kubernetes.io/last-applied-configuration": "{...}",
            "tailscale.com/hostname": "web",
            "tailwire.dev/netns": "ns-web",
        },
        "ownerReferences": [
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "name": "web-5d",
                "uid": "rs-1",
                "controller": True,
            }
        ],
        "deletionTimestamp": "2026-11-22T00:00:00Z",
        "managedFields": [{"manager": "kubelet"}],
    },
    "spec": {"nodeName": "node-a", "hostNetwork": False, "containers": [{"name": "c"}]},
    "status": {
        "phase": "Running",
        "podIP": "10.244.1.5",
        "podIPs": [{"ip": "10.244.1.5"}, {"ip": "fd00::5"}],
        "conditions": [{"type": "Ready", "status": "True", "lastProbeTime": None}],
        "containerStatuses": [{"name": "c", "restartCount": 3}],
    },
}
PODS = domain.BY_KIND[subjects.Kind.POD]


def test_a_pod_keeps_only_the_fields_consumers_need() -> None:
    snapshot = domain.normalize(PODS, POD)
    assert snapshot == cluster.PodSnapshot(
        meta=cluster.Meta(
            uid="u-1",
            namespace="shop",
            name="web-1",
            resource_version="41",
            generation=1,
            labels={"app": "web"},
            annotations={"tailscale.com/hostname": "web", "tailwire.dev/netns": "ns-web"},
            owners=(cluster.Owner(kind="ReplicaSet", name="web-5d", uid="rs-1", controller=True),),
            deletion_timestamp=datetime.datetime(2026, 11, 22, tzinfo=datetime.UTC),
        ),
        node_name="node-a",
        phase="Running",
        pod_ips=("10.244.1.5", "fd00::5"),
        host_network=False,
    )
    assert snapshot.dedup_id == "u-1:41"
    assert domain.tombstone(snapshot, resource_version="42").dedup_id == "u-1:42:deleted"
    assert len(snapshot.to_bytes()) < 600


def test_cluster_scoped_objects_have_no_namespace_and_crs_keep_their_spec() -> None:
    group = domain.normalize(
        domain.BY_KIND[subjects.Kind.EGRESSGROUP],
        {
            "apiVersion": "tailscale.rajsingh.info/v1alpha1",
            "kind": "EgressGroup",
            "metadata": {"name": "eg", "uid": "u", "resourceVersion": "3"},
            "spec": {"mode": "cgnat", "routes": ["10.0.0.0/8"]},
            "status": {"matchedPods": 4},
        },
    )
    assert isinstance(group, cluster.EgressGroupSnapshot)
    assert group.ref == subjects.ObjectRef(
        kind=subjects.Kind.EGRESSGROUP, namespace=None, name="eg"
    )
    assert group.spec == {"mode": "cgnat", "routes": ["10.0.0.0/8"]}
    assert group.api_version == "tailscale.rajsingh.info/v1alpha1"


def test_gateway_and_route_status_are_summarized() -> None:
    gateway = domain.normalize(
        domain.BY_KIND[subjects.Kind.GATEWAY],
        {
            "metadata": {"name": "ts", "namespace": "gw", "uid": "g"},
            "spec": {
                "gatewayClassName": "envoy",
                "listeners": [
                    {"name": "https", "port": 443, "protocol": "HTTPS", "hostname": "*.example.com"}
                ],
            },
            "status": {
                "addresses": [{"type": "IPAddress", "value": "100.64.0.9"}],
                "conditions": [{"type": "Programmed", "status": "True"}],
            },
        },
    )
    assert isinstance(gateway, cluster.GatewaySnapshot)
    assert gateway.addresses == ("100.64.0.9",)
    assert gateway.programmed is True
    assert gateway.listeners[0].hostname == "*.example.com"
    route = domain.normalize(
        domain.BY_KIND[subjects.Kind.HTTPROUTE],
        {
            "metadata": {"name": "r", "namespace": "app", "uid": "r"},
            "spec": {
                "parentRefs": [{"name": "ts", "namespace": "gw", "sectionName": "https"}],
                "rules": [
                    {
                        "backendRefs": [
                            {"name": "a"},
                            {"name": "b", "namespace": "x"},
                            {"name": "ext", "kind": "Backend", "group": "gateway.envoyproxy.io"},
                        ]
                    }
                ],
            },
            "status": {
                "parents": [
                    {
                        "parentRef": {"name": "ts", "namespace": "gw"},
                        "conditions": [{"type": "Accepted", "status": "False"}],
                    }
                ]
            },
        },
    )
    assert isinstance(route, cluster.HTTPRouteSnapshot)
    assert route.backend_services == ("app/a", "x/b")
    assert route.parent_refs[0].section_name == "https"
    assert route.parents[0].accepted is False


def test_a_bad_object_names_itself_and_the_field() -> None:
    bad = {
        "metadata": {"name": "s", "namespace": "n", "uid": "u"},
        "spec": {"ports": [{"port": "not-a-number"}]},
    }
    with pytest.raises(domain.NormalizationError, match=r"service/n/s: .*port"):
        domain.normalize(domain.BY_KIND[subjects.Kind.SERVICE], bad)
    with pytest.raises(domain.NormalizationError, match=r"metadata\.uid"):
        domain.normalize(PODS, {"metadata": {"name": "x", "namespace": "n"}})


def test_content_ignores_the_resource_version_only() -> None:
    a = domain.normalize(PODS, POD)
    churned = domain.normalize(
        PODS, {**POD, "metadata": {**POD["metadata"], "resourceVersion": "99"}}
    )
    assert domain.same_content(a, churned)
    assert not domain.needs_publish(published=a, current=churned)
    moved = domain.normalize(PODS, {**POD, "spec": {**POD["spec"], "nodeName": "node-b"}})
    assert domain.needs_publish(published=a, current=moved)
    assert domain.needs_publish(published=None, current=a)
    assert domain.needs_publish(published=a, current=domain.tombstone(a))
    assert not domain.needs_publish(published=None, current=domain.tombstone(a))


def test_a_relist_diff_holds_changes_and_tombstones_only() -> None:
    def pod(name: str, rv: str, node: str = "n") -> domain.Snapshot:
        return domain.normalize(
            PODS,
            {
                "metadata": {"name": name, "namespace": "d", "uid": name, "resourceVersion": rv},
                "spec": {"nodeName": node},
            },
        )

    published = {
        domain.subject_of(p): p for p in (pod("same", "1"), pod("moved", "2"), pod("gone", "3"))
    }
    changes = domain.diff_listing(
        published=published, listed=[pod("same", "7"), pod("moved", "8", "m"), pod("new", "9")]
    )
    assert [(c.meta.name, c.meta.resource_version, c.deleted) for c in changes] == [
        ("moved", "8", False),
        ("new", "9", False),
        ("gone", "3", True),
    ]


def test_the_service_rule() -> None:
    def svc(name: str, **extra: Any) -> dict[str, Any]:
        return {"metadata": {"name": name, **extra.pop("meta", {})}, "spec": extra}

    assert domain.is_mirrored_service(svc("x", loadBalancerClass="tailscale"))
    assert domain.is_mirrored_service(svc("gateway-internal"))
    assert domain.is_mirrored_service(svc("envoy-gateway-internal"))
    assert domain.is_mirrored_service(svc("x", meta={"labels": {"tailwire.dev/tailnet": "t"}}))
    assert domain.is_mirrored_service(
        svc("x", meta={"labels": {"app.kubernetes.io/managed-by": "tailwire"}})
    )
    assert not domain.is_mirrored_service(svc("x", type="LoadBalancer"))
    assert not domain.is_mirrored_service(svc("internal-gateway"))


def test_backoff_doubles_up_to_the_cap_with_half_of_it_jitter() -> None:
    backoff = domain.Backoff(initial=0.5, maximum=30.0)
    assert [backoff.delay(attempt=n, rand=0.0) for n in range(4)] == [0.25, 0.5, 1.0, 2.0]
    assert backoff.delay(attempt=3, rand=0.999) < 4.0
    assert backoff.delay(attempt=100, rand=0.999) <= 30.0
    assert backoff.delay(attempt=100, rand=0.0) == 15.0
