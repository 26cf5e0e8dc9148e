"""The renderer's materialized view of the cluster: the latest snapshot of every object.

Built from `tailwire.v1.cluster.>` by the handlers (bus) or from manifests by
`tailwire render` (`snapshot_from_manifest`); read by the egress and the ingress computations
alike. Pure data: it must not talk to NATS or Kubernetes, and it never decides anything
(membership, routes, manifests are computed in `egress/` and `ingress/`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pydantic

from tailwire.services.renderer.ingress import objects as ingress_objects
from tailwire.shared import subjects
from tailwire.shared.events import cluster

# Kubernetes sets this label on every namespace; namespaces unknown to the view still have it.
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"

Key = tuple[subjects.Kind, str | None, str]

_SNAPSHOT = pydantic.TypeAdapter[cluster.Snapshot](cluster.Snapshot)


@dataclasses.dataclass(kw_only=True)
class ClusterView:
    """Latest snapshot per object; tombstones remove. `apply` says whether anything changed."""

    objects: dict[Key, Any] = dataclasses.field(default_factory=dict)

    def apply(self, snapshot: Any) -> bool:
        key: Key = (snapshot.kind, snapshot.meta.namespace, snapshot.meta.name)
        if snapshot.deleted:
            return self.objects.pop(key, None) is not None
        if self.objects.get(key) == snapshot:
            return False
        self.objects[key] = snapshot
        return True

    def of_kind(self, kind: subjects.Kind) -> Iterator[Any]:
        for key, obj in self.objects.items():
            if key[0] == kind:
                yield obj

    def pods(self) -> list[cluster.PodSnapshot]:
        return [p for p in self.of_kind(subjects.Kind.POD) if isinstance(p, cluster.PodSnapshot)]

    def nodes(self) -> list[cluster.NodeSnapshot]:
        return [n for n in self.of_kind(subjects.Kind.NODE) if isinstance(n, cluster.NodeSnapshot)]

    def egress_groups(self) -> list[cluster.EgressGroupSnapshot]:
        return [
            g
            for g in self.of_kind(subjects.Kind.EGRESSGROUP)
            if isinstance(g, cluster.EgressGroupSnapshot)
        ]

    def namespace_labels(self, namespace: str) -> dict[str, str]:
        """The namespace's labels, always with `kubernetes.io/metadata.name`."""
        snapshot = self.objects.get((subjects.Kind.NAMESPACE, None, namespace))
        labels = dict(snapshot.meta.labels) if snapshot is not None else {}
        labels.setdefault(NAMESPACE_NAME_LABEL, namespace)
        return labels


def decode_snapshot(body: bytes) -> Any:
    """A snapshot of any kind from its wire form (pydantic.ValidationError if malformed)."""
    return _SNAPSHOT.validate_json(body)


# --- manifests (`kubectl get -o yaml`) to snapshots, for `tailwire render` -------------------


def _meta(raw: dict[str, Any], *, fallback_uid: str) -> cluster.Meta:
    metadata = raw.get("metadata") or {}
    return cluster.Meta(
        uid=str(metadata.get("uid") or fallback_uid),
        namespace=metadata.get("namespace") or None,
        name=str(metadata.get("name") or ""),
        resource_version=str(metadata.get("resourceVersion") or ""),
        generation=metadata.get("generation"),
        labels=dict(metadata.get("labels") or {}),
        annotations=dict(metadata.get("annotations") or {}),
    )


def snapshot_from_manifest(raw: dict[str, Any]) -> Any | None:
    """The snapshot the watcher would publish for a manifest; None for kinds not mirrored.

    Objects without a uid (hand-written YAML) get a stable stand-in derived from their name,
    so rendering them is deterministic.
    """
    kind = raw.get("kind")
    metadata = raw.get("metadata") or {}
    fallback = f"{kind}/{metadata.get('namespace') or ''}/{metadata.get('name') or ''}"
    meta = _meta(raw, fallback_uid=fallback)
    spec = raw.get("spec") or {}
    status = raw.get("status") or {}
    if kind == "Namespace" and raw.get("apiVersion") == "v1":
        return cluster.NamespaceSnapshot(meta=meta)
    if kind == "Node" and raw.get("apiVersion") == "v1":
        addresses = status.get("addresses") or []
        return cluster.NodeSnapshot(
            meta=meta,
            pod_cidrs=tuple(
                spec.get("podCIDRs") or ([spec["podCIDR"]] if "podCIDR" in spec else [])
            ),
            internal_ips=tuple(a["address"] for a in addresses if a.get("type") == "InternalIP"),
            unschedulable=bool(spec.get("unschedulable", False)),
        )
    if kind == "Pod" and raw.get("apiVersion") == "v1":
        ips = tuple(p["ip"] for p in status.get("podIPs") or [] if p.get("ip"))
        if not ips and status.get("podIP"):
            ips = (status["podIP"],)
        return cluster.PodSnapshot(
            meta=meta.model_copy(update={"namespace": meta.namespace or "default"}),
            node_name=spec.get("nodeName"),
            phase=status.get("phase") or "Running",
            pod_ips=ips,
            host_network=bool(spec.get("hostNetwork", False)),
            dns_policy=spec.get("dnsPolicy"),
            dns_nameservers=tuple((spec.get("dnsConfig") or {}).get("nameservers") or ()),
        )
    if kind == "EgressGroup":
        return cluster.EgressGroupSnapshot(
            meta=meta, api_version=str(raw.get("apiVersion") or ""), spec=spec
        )
    if kind == "TailscaleGateway":
        return cluster.TailscaleGatewaySnapshot(
            meta=meta, api_version=str(raw.get("apiVersion") or ""), spec=spec
        )
    if kind == "TailscaleTailnet":
        return cluster.TailscaleTailnetSnapshot(
            meta=meta, api_version=str(raw.get("apiVersion") or ""), spec=spec
        )
    # Services, Gateways and HTTPRoutes, which the ingress side reads.
    return ingress_objects.snapshot_of(raw)
