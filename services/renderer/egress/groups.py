"""EgressGroup snapshots validated into groups, and which pods each group selects.

A pod belongs to at most one group: when several select it, the group whose name sorts first
takes it and the others report the conflict. Host-network pods, pods in the gateways' own
namespace, pods not yet scheduled and pods that finished are never members.
Must not: do I/O or decide anything about routes, links or manifests.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from tailwire.shared import errors
from tailwire.shared.events import cluster
from tailwire.shared.k8s import names
from tailwire.shared.resources import common, egressgroup, loading

FINISHED_PHASES = frozenset({"Succeeded", "Failed"})


@dataclasses.dataclass(frozen=True, kw_only=True)
class Group:
    """One EgressGroup as the renderer sees it: valid (`spec` set) or not (`problems`)."""

    name: str
    uid: str
    generation: int | None
    spec: egressgroup.EgressGroupSpec | None
    problems: tuple[errors.Problem, ...]
    deleting: bool = False
    finalizers: tuple[str, ...] = ()
    cluster_name: str = ""

    @property
    def valid(self) -> bool:
        return self.spec is not None and not self.problems

    @property
    def active(self) -> bool:
        """Valid and not being deleted: only active groups get gateways and members."""
        return self.valid and not self.deleting

    @property
    def tailnet(self) -> str:
        return (self.spec.tailnet if self.spec else None) or "default"

    @property
    def hostname_prefix(self) -> str:
        """What every tailnet hostname of this group's gateways starts with."""
        return names.hostname_prefix(self.name, cluster=self.cluster_name)

    def hostname(self, *, node: str) -> str:
        """The tailnet hostname of this group's gateway on `node`."""
        return names.gateway_hostname(group=self.name, node=node, cluster=self.cluster_name)

    def problem_message(self) -> str:
        return "; ".join(str(p) for p in self.problems)


def group_from_snapshot(snapshot: cluster.EgressGroupSnapshot, *, cluster_name: str = "") -> Group:
    """Validate the raw spec exactly as `tailwire validate` does; problems name the field."""
    metadata: dict[str, object] = {"name": snapshot.meta.name}
    if snapshot.meta.namespace:
        metadata["namespace"] = snapshot.meta.namespace
    raw = {
        "apiVersion": snapshot.api_version,
        "kind": egressgroup.KIND,
        "metadata": metadata,
        "spec": snapshot.spec,
    }
    checked = loading.validate_object(raw)
    resource = checked.resource
    spec = resource.spec if isinstance(resource, egressgroup.EgressGroup) else None
    return Group(
        name=snapshot.meta.name,
        uid=snapshot.meta.uid,
        generation=snapshot.meta.generation,
        spec=spec,
        problems=checked.problems,
        deleting=snapshot.meta.deletion_timestamp is not None,
        finalizers=snapshot.meta.finalizers,
        cluster_name=cluster_name,
    )


def eligible(pod: cluster.PodSnapshot, *, gateway_namespace: str) -> bool:
    """Whether a pod can be a member of any group at all."""
    return (
        not pod.deleted
        and not pod.host_network
        and bool(pod.node_name)
        and pod.meta.namespace != gateway_namespace
        and pod.phase not in FINISHED_PHASES
    )


def selects(
    spec: egressgroup.EgressGroupSpec,
    *,
    pod_labels: dict[str, str],
    namespace_labels: dict[str, str],
) -> bool:
    """Both selectors match (a missing selector matches everything)."""
    selector = spec.selector
    if selector.namespace_selector is not None and not selector.namespace_selector.matches(
        namespace_labels
    ):
        return False
    return selector.pod_selector is None or selector.pod_selector.matches(pod_labels)


groups_spec = tuple[str, common.LabelSelector | None]


@dataclasses.dataclass(frozen=True, kw_only=True)
class Membership:
    """Members per group, and for each group the pods another group took from it."""

    members: dict[str, tuple[cluster.PodSnapshot, ...]]
    # group -> ((pod "ns/name", the group that took it), ...)
    conflicts: dict[str, tuple[tuple[str, str], ...]]


def compute_membership(
    *,
    groups: Iterable[Group],
    pods: Iterable[cluster.PodSnapshot],
    namespace_labels: dict[str, dict[str, str]],
    gateway_namespace: str,
) -> Membership:
    """Assign every eligible pod to the first (by name) active group that selects it."""
    active = sorted((g for g in groups if g.active), key=lambda g: g.name)
    members: dict[str, list[cluster.PodSnapshot]] = {g.name: [] for g in active}
    conflicts: dict[str, list[tuple[str, str]]] = {}
    # Namespace selectors are evaluated once per namespace, not once per pod.
    candidates: dict[str, list[groups_spec]] = {}
    for pod in sorted(pods, key=lambda p: (p.meta.namespace or "", p.meta.name, p.meta.uid)):
        if not eligible(pod, gateway_namespace=gateway_namespace):
            continue
        namespace = pod.meta.namespace or ""
        if namespace not in candidates:
            ns_labels = namespace_labels.get(namespace) or {}
            candidates[namespace] = [
                (g.name, g.spec.selector.pod_selector)
                for g in active
                if g.spec is not None
                and (
                    g.spec.selector.namespace_selector is None
                    or g.spec.selector.namespace_selector.matches(ns_labels)
                )
            ]
        chosen: str | None = None
        for name, pod_selector in candidates[namespace]:
            if pod_selector is not None and not pod_selector.matches(pod.meta.labels):
                continue
            if chosen is None:
                chosen = name
                members[name].append(pod)
            else:
                conflicts.setdefault(name, []).append((f"{namespace}/{pod.meta.name}", chosen))
    return Membership(
        members={name: tuple(pods) for name, pods in members.items()},
        conflicts={name: tuple(found) for name, found in conflicts.items()},
    )
