"""Pure domain logic of the watcher: which resources it mirrors, how a raw Kubernetes object
becomes a normalized snapshot, and when a snapshot is worth publishing.

Responsible for: the table of watched resources, normalization (only the fields consumers
need, annotations filtered to the kept prefixes), the Service selection rule, tombstones,
content comparison (a snapshot that differs only in `resourceVersion` is not a change), the
diff of a full list against what was published, and the jittered backoff arithmetic.

Must not: do I/O, import a framework or a client library, or decide anything about desired
state (the renderer does that). Raw objects are plain JSON mappings as the API serves them.
"""

from __future__ import annotations

import dataclasses
import datetime
import types
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import pydantic

from tailwire.shared import subjects
from tailwire.shared.events import cluster
from tailwire.shared.k8s import labels
from tailwire.shared.resources import egressgroup, tailscalegateway, tailscaletailnet

JSON = Mapping[str, Any]
Snapshot = (
    cluster.PodSnapshot
    | cluster.NamespaceSnapshot
    | cluster.NodeSnapshot
    | cluster.ServiceSnapshot
    | cluster.GatewaySnapshot
    | cluster.HTTPRouteSnapshot
    | cluster.EgressGroupSnapshot
    | cluster.TailscaleGatewaySnapshot
    | cluster.TailscaleTailnetSnapshot
)
SNAPSHOT_ADAPTER: pydantic.TypeAdapter[Snapshot] = pydantic.TypeAdapter(cluster.Snapshot)

# The Service selection rule (docs/benchmarks/watcher.md and the README describe it too):
# a Service is mirrored when it is a Tailscale LoadBalancer, when tailwire manages it, when it
# carries any `tailwire.dev/` label, or when it is named like the seed's in-cluster
# "gateway-internal" Service (`gateway-internal` or `<anything>-gateway-internal`).
GATEWAY_INTERNAL_NAME = "gateway-internal"


@dataclasses.dataclass(frozen=True, kw_only=True)
class Resource:
    """One watched resource: its identity in API paths and the snapshot kind it becomes."""

    kind: subjects.Kind
    group: str  # "" for the core group
    version: str
    plural: str
    namespaced: bool
    custom: bool = False  # served from a CRD: may be missing, then retried later

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, *, namespace: str | None = None) -> str:
        """The collection URL path, cluster-wide or in one namespace."""
        root = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if namespace and self.namespaced:
            return f"{root}/namespaces/{namespace}/{self.plural}"
        return f"{root}/{self.plural}"


def _ours(*, kind: subjects.Kind, module: types.ModuleType) -> Resource:
    """One of tailwire's own CRDs, from the resource module that defines it."""
    return Resource(
        kind=kind,
        group=module.GROUP,
        version=module.VERSION,
        plural=module.PLURAL,
        namespaced=module.SCOPE == "Namespaced",
        custom=True,
    )


RESOURCES: tuple[Resource, ...] = (
    Resource(
        kind=subjects.Kind.NAMESPACE, group="", version="v1", plural="namespaces", namespaced=False
    ),
    Resource(kind=subjects.Kind.NODE, group="", version="v1", plural="nodes", namespaced=False),
    Resource(kind=subjects.Kind.POD, group="", version="v1", plural="pods", namespaced=True),
    Resource(
        kind=subjects.Kind.SERVICE, group="", version="v1", plural="services", namespaced=True
    ),
    Resource(
        kind=subjects.Kind.GATEWAY,
        group="gateway.networking.k8s.io",
        version="v1",
        plural="gateways",
        namespaced=True,
        custom=True,
    ),
    Resource(
        kind=subjects.Kind.HTTPROUTE,
        group="gateway.networking.k8s.io",
        version="v1",
        plural="httproutes",
        namespaced=True,
        custom=True,
    ),
    *(
        _ours(kind=kind, module=module)
        for kind, module in (
            (subjects.Kind.EGRESSGROUP, egressgroup),
            (subjects.Kind.TAILSCALEGATEWAY, tailscalegateway),
            (subjects.Kind.TAILSCALETAILNET, tailscaletailnet),
        )
    ),
)
BY_KIND: dict[subjects.Kind, Resource] = {r.kind: r for r in RESOURCES}


class NormalizationError(ValueError):
    """A raw object could not be normalized; the message names the object and the field."""


# --- normalization ----------------------------------------------------------------------------


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _timestamp(value: Any) -> datetime.datetime | None:
    if not value:
        return None
    if isinstance(value, datetime.datetime):
        return value
    return datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _kept_annotations(annotations: Mapping[str, Any]) -> dict[str, str]:
    return {
        k: str(v) for k, v in annotations.items() if k.startswith(labels.KEPT_ANNOTATION_PREFIXES)
    }


def _meta(obj: JSON, *, namespaced: bool) -> cluster.Meta:
    meta = _dict(obj.get("metadata"))
    owners = tuple(
        cluster.Owner(
            kind=o["kind"], name=o["name"], uid=o["uid"], controller=bool(o.get("controller"))
        )
        for o in _list(meta.get("ownerReferences"))
    )
    return cluster.Meta(
        uid=meta.get("uid") or "",
        namespace=(meta.get("namespace") or None) if namespaced else None,
        name=meta.get("name") or "",
        resource_version=str(meta.get("resourceVersion") or ""),
        generation=meta.get("generation"),
        labels={str(k): str(v) for k, v in _dict(meta.get("labels")).items()},
        annotations=_kept_annotations(_dict(meta.get("annotations"))),
        owners=owners,
        deletion_timestamp=_timestamp(meta.get("deletionTimestamp")),
        finalizers=tuple(_list(meta.get("finalizers"))),
        creation_timestamp=_timestamp(meta.get("creationTimestamp")),
    )


def _condition_true(conditions: Iterable[Any], type_: str) -> bool | None:
    for condition in conditions:
        if _dict(condition).get("type") == type_:
            return bool(_dict(condition).get("status") == "True")
    return None


def _pod(meta: cluster.Meta, obj: JSON) -> cluster.PodSnapshot:
    spec, status = _dict(obj.get("spec")), _dict(obj.get("status"))
    ips = tuple(str(_dict(i).get("ip")) for i in _list(status.get("podIPs")) if _dict(i).get("ip"))
    if not ips and status.get("podIP"):
        ips = (str(status["podIP"]),)
    return cluster.PodSnapshot(
        meta=meta,
        node_name=spec.get("nodeName") or None,
        phase=status.get("phase") or None,
        pod_ips=ips,
        host_network=bool(spec.get("hostNetwork")),
        dns_policy=spec.get("dnsPolicy") or None,
        dns_nameservers=tuple(
            str(n) for n in _list(_dict(spec.get("dnsConfig")).get("nameservers"))
        ),
    )


def _node(meta: cluster.Meta, obj: JSON) -> cluster.NodeSnapshot:
    spec, status = _dict(obj.get("spec")), _dict(obj.get("status"))
    cidrs = tuple(_list(spec.get("podCIDRs"))) or (
        (str(spec["podCIDR"]),) if spec.get("podCIDR") else ()
    )
    return cluster.NodeSnapshot(
        meta=meta,
        pod_cidrs=cidrs,
        internal_ips=tuple(
            str(_dict(a).get("address"))
            for a in _list(status.get("addresses"))
            if _dict(a).get("type") == "InternalIP"
        ),
        ready=bool(_condition_true(_list(status.get("conditions")), "Ready")),
        unschedulable=bool(spec.get("unschedulable")),
    )


def _service(meta: cluster.Meta, obj: JSON) -> cluster.ServiceSnapshot:
    spec, status = _dict(obj.get("spec")), _dict(obj.get("status"))
    cluster_ips = tuple(_list(spec.get("clusterIPs"))) or (
        (str(spec["clusterIP"]),) if spec.get("clusterIP") else ()
    )
    return cluster.ServiceSnapshot(
        meta=meta,
        service_type=spec.get("type") or "ClusterIP",
        load_balancer_class=spec.get("loadBalancerClass") or None,
        cluster_ips=cluster_ips,
        ports=tuple(
            cluster.ServicePort.model_validate(
                {
                    "name": _dict(p).get("name"),
                    "port": _dict(p).get("port"),
                    "protocol": _dict(p).get("protocol") or "TCP",
                    "target_port": _dict(p).get("targetPort"),
                    "app_protocol": _dict(p).get("appProtocol"),
                }
            )
            for p in _list(spec.get("ports"))
        ),
        selector={str(k): str(v) for k, v in _dict(spec.get("selector")).items()},
        load_balancer_ingress=tuple(
            cluster.LoadBalancerIngress(ip=_dict(i).get("ip"), hostname=_dict(i).get("hostname"))
            for i in _list(_dict(status.get("loadBalancer")).get("ingress"))
        ),
    )


def _gateway(meta: cluster.Meta, obj: JSON) -> cluster.GatewaySnapshot:
    spec, status = _dict(obj.get("spec")), _dict(obj.get("status"))
    return cluster.GatewaySnapshot(
        meta=meta,
        gateway_class_name=spec.get("gatewayClassName") or "",
        listeners=tuple(
            cluster.Listener.model_validate(
                {
                    "name": _dict(item).get("name"),
                    "port": _dict(item).get("port"),
                    "protocol": _dict(item).get("protocol"),
                    "hostname": _dict(item).get("hostname"),
                }
            )
            for item in _list(spec.get("listeners"))
        ),
        addresses=tuple(
            str(_dict(a).get("value"))
            for a in _list(status.get("addresses"))
            if _dict(a).get("value")
        ),
        programmed=_condition_true(_list(status.get("conditions")), "Programmed"),
    )


def _parent_ref(ref: Any) -> cluster.ParentRef:
    ref = _dict(ref)
    return cluster.ParentRef(
        group=ref.get("group") or "gateway.networking.k8s.io",
        kind=ref.get("kind") or "Gateway",
        namespace=ref.get("namespace"),
        name=ref.get("name"),
        section_name=ref.get("sectionName"),
    )


def _httproute(meta: cluster.Meta, obj: JSON) -> cluster.HTTPRouteSnapshot:
    spec, status = _dict(obj.get("spec")), _dict(obj.get("status"))
    backends: list[str] = []
    for rule in _list(spec.get("rules")):
        for backend in _list(_dict(rule).get("backendRefs")):
            backend = _dict(backend)
            if backend.get("kind", "Service") == "Service" and backend.get("group", "") == "":
                # `<namespace>/<name>`: a backend may live in another namespace.
                name = f"{backend.get('namespace') or meta.namespace}/{backend.get('name')}"
                if name not in backends:
                    backends.append(name)
    return cluster.HTTPRouteSnapshot(
        meta=meta,
        parent_refs=tuple(_parent_ref(r) for r in _list(spec.get("parentRefs"))),
        hostnames=tuple(str(h) for h in _list(spec.get("hostnames"))),
        parents=tuple(
            cluster.RouteParentStatus(
                parent=_parent_ref(_dict(p).get("parentRef")),
                accepted=bool(_condition_true(_list(_dict(p).get("conditions")), "Accepted")),
            )
            for p in _list(status.get("parents"))
        ),
        backend_services=tuple(backends),
    )


_CUSTOM: dict[
    subjects.Kind,
    type[cluster.EgressGroupSnapshot]
    | type[cluster.TailscaleGatewaySnapshot]
    | type[cluster.TailscaleTailnetSnapshot],
] = {
    subjects.Kind.EGRESSGROUP: cluster.EgressGroupSnapshot,
    subjects.Kind.TAILSCALEGATEWAY: cluster.TailscaleGatewaySnapshot,
    subjects.Kind.TAILSCALETAILNET: cluster.TailscaleTailnetSnapshot,
}

_BUILT_IN: dict[subjects.Kind, Callable[[cluster.Meta, JSON], Snapshot]] = {
    subjects.Kind.POD: _pod,
    subjects.Kind.NAMESPACE: lambda meta, _: cluster.NamespaceSnapshot(meta=meta),
    subjects.Kind.NODE: _node,
    subjects.Kind.SERVICE: _service,
    subjects.Kind.GATEWAY: _gateway,
    subjects.Kind.HTTPROUTE: _httproute,
}


def describe(resource: Resource, obj: JSON) -> str:
    """`<kind>/<namespace>/<name>` of a raw object, for messages."""
    meta = _dict(obj.get("metadata"))
    ns = meta.get("namespace")
    name = meta.get("name") or "<no name>"
    return (
        f"{resource.kind}/{ns}/{name}" if ns and resource.namespaced else f"{resource.kind}/{name}"
    )


def normalize(resource: Resource, obj: JSON) -> Snapshot:
    """The snapshot of a raw object; NormalizationError names the object and the bad field."""
    try:
        meta = _meta(obj, namespaced=resource.namespaced)
        if not meta.uid or not meta.name:
            raise NormalizationError(f"{describe(resource, obj)}: metadata.uid/name: missing")
        if resource.kind in _CUSTOM:
            return _CUSTOM[resource.kind](
                meta=meta,
                api_version=str(obj.get("apiVersion") or resource.api_version),
                spec=dict(_dict(obj.get("spec"))),
            )
        return _BUILT_IN[resource.kind](meta, obj)
    except pydantic.ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
            for e in exc.errors(include_url=False)[:5]
        )
        raise NormalizationError(f"{describe(resource, obj)}: {problems}") from exc
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, NormalizationError):
            raise
        raise NormalizationError(f"{describe(resource, obj)}: {exc!r}") from exc


def tombstone(snapshot: Snapshot, *, resource_version: str | None = None) -> Snapshot:
    """The deletion of an object: its last known payload with `deleted=True`."""
    meta = snapshot.meta
    if resource_version:
        meta = meta.model_copy(update={"resource_version": resource_version})
    return snapshot.model_copy(update={"meta": meta, "deleted": True})


# --- selection --------------------------------------------------------------------------------


def is_mirrored_service(obj: JSON) -> bool:
    """The Service rule: Tailscale LoadBalancers and the gateway-internal Services."""
    spec, meta = _dict(obj.get("spec")), _dict(obj.get("metadata"))
    if spec.get("loadBalancerClass") == labels.TAILSCALE_LOAD_BALANCER_CLASS:
        return True
    object_labels = _dict(meta.get("labels"))
    if object_labels.get(labels.MANAGED_BY) == labels.MANAGED_BY_VALUE:
        return True
    if any(str(k).startswith(f"{labels.DOMAIN}/") for k in object_labels):
        return True
    name = str(meta.get("name") or "")
    return name == GATEWAY_INTERNAL_NAME or name.endswith(f"-{GATEWAY_INTERNAL_NAME}")


def selector_for(resource: Resource, *, namespaces: frozenset[str]) -> Callable[[JSON], bool]:
    """Which listed objects of a resource are mirrored (the API cannot filter these)."""
    if resource.kind is subjects.Kind.SERVICE:
        return is_mirrored_service
    if resource.kind is subjects.Kind.NAMESPACE and namespaces:
        return lambda obj: _dict(obj.get("metadata")).get("name") in namespaces
    return lambda _: True


# --- change detection -------------------------------------------------------------------------


def subject_of(snapshot: Snapshot) -> str:
    return subjects.cluster(snapshot.ref)


def same_content(a: Snapshot | None, b: Snapshot | None) -> bool:
    """Equal but for `resourceVersion`: status churn that normalization dropped."""
    if a is None or b is None:
        return a is b
    if a.deleted != b.deleted or type(a) is not type(b):
        return False
    return a.model_copy(update={"meta": a.meta.model_copy(update={"resource_version": ""})}) == (
        b.model_copy(update={"meta": b.meta.model_copy(update={"resource_version": ""})})
    )


def needs_publish(*, published: Snapshot | None, current: Snapshot) -> bool:
    """Whether `current` is news to consumers who last saw `published` (None: nothing)."""
    if current.deleted:
        return published is not None and not published.deleted
    return not same_content(published, current)


def diff_listing(
    *, published: Mapping[str, Snapshot], listed: Iterable[Snapshot]
) -> list[Snapshot]:
    """What a full list changes for consumers: changed or new snapshots, then tombstones for
    the published objects the list no longer holds (deleted while we were not watching)."""
    changes: list[Snapshot] = []
    seen: set[str] = set()
    for snapshot in listed:
        subject = subject_of(snapshot)
        seen.add(subject)
        if needs_publish(published=published.get(subject), current=snapshot):
            changes.append(snapshot)
    for subject, last in published.items():
        if subject not in seen and not last.deleted:
            changes.append(tombstone(last))
    return changes


# --- backoff ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, kw_only=True)
class Backoff:
    """Exponential backoff with equal jitter: half fixed, half random, capped."""

    initial: float = 0.5
    maximum: float = 30.0

    def delay(self, *, attempt: int, rand: float) -> float:
        """The pause before retry number `attempt` (0-based); `rand` is uniform in [0, 1)."""
        base = min(self.maximum, self.initial * (2.0 ** min(attempt, 32)))
        return base / 2 + base / 2 * rand
