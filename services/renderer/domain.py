"""Pure pieces every part of the renderer shares: what a computation hands back to be
applied, and how manifests are identified and ordered.

Egress (`egress/`) and ingress (`ingress/`) each turn the cluster view into a `Rendered`;
the handlers apply and prune it, `tailwire render` prints it. No I/O, no framework here.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from tailwire.services.renderer import view as view_module
from tailwire.shared import settings
from tailwire.shared.events import base, keys, status
from tailwire.shared.resources import common

Manifest = dict[str, Any]


@dataclasses.dataclass(frozen=True, kw_only=True)
class PruneScope:
    """Where to look for objects a computation owns: kinds, namespace, label selector.

    Pruning deletes objects found here that are not in the desired set, and only objects
    carrying `app.kubernetes.io/managed-by=tailwire` (part of every selector).
    """

    api_version: str
    kind: str
    namespace: str | None
    labels: dict[str, str]


@dataclasses.dataclass(frozen=True, kw_only=True)
class Rendered:
    """Desired manifests, what to prune against, and extra offline documents (NodePlans)."""

    manifests: tuple[Manifest, ...] = ()
    prune: tuple[PruneScope, ...] = ()
    documents: tuple[Manifest, ...] = ()
    # (object reference {apiVersion, kind, metadata: {name, namespace}}, status document):
    # merge-patched onto `/status` by the running renderer; ignored by `tailwire render`.
    statuses: tuple[tuple[Manifest, dict[str, Any]], ...] = ()
    # (subject, summary) for `tailwire.v1.status.<kind>...`: published by the running
    # renderer when it differs from the last one on the bus; ignored by `tailwire render`.
    summaries: tuple[tuple[str, status.StatusSummary], ...] = ()
    # (object reference, the complete finalizer list it should have): written by the running
    # renderer after this result's pruning succeeded; ignored by `tailwire render`.
    finalizers: tuple[tuple[Manifest, tuple[str, ...]], ...] = ()


@dataclasses.dataclass(frozen=True, kw_only=True)
class RenderInput:
    """Everything an offline computation may read."""

    view: view_module.ClusterView
    cluster_cidrs: tuple[str, ...]
    gateway_namespace: str
    cluster_name: str = ""
    gateway_image: str = settings.DEFAULT_GATEWAY_IMAGE
    # The keyminter's last check per TailscaleTailnet (`keys.tailnet`); empty offline.
    tailnet_checks: Mapping[str, keys.TailnetChecked] = dataclasses.field(default_factory=dict)


class Renderer(Protocol):
    """One computation usable by `tailwire render` (egress, ingress, ...)."""

    def __call__(self, source: RenderInput, /) -> Rendered: ...


def retired_summaries(
    published: Mapping[str, status.StatusSummary], *, current: Iterable[str]
) -> list[tuple[str, status.StatusSummary]]:
    """One last `deleted` summary for every published subject whose object left the view
    (none for a subject whose last summary already says deleted)."""
    live = set(current)
    gone = {"ready": False, "deleted": True, "conditions": (), "details": {}}
    return [
        (subject, last.model_copy(update=gone))
        for subject, last in sorted(published.items())
        if subject not in live and not last.deleted
    ]


def object_key(manifest: Manifest) -> tuple[str, str, str, str]:
    """(apiVersion, kind, namespace, name): identity of an applied object."""
    metadata = manifest.get("metadata") or {}
    return (
        str(manifest.get("apiVersion", "")),
        str(manifest.get("kind", "")),
        str(metadata.get("namespace") or ""),
        str(metadata.get("name", "")),
    )


def file_name(manifest: Manifest) -> str:
    """`<kind>-<namespace>-<name>.yaml` (lower-case kind, no namespace part if cluster-scoped)."""
    _, kind, namespace, name = object_key(manifest)
    parts = [kind.lower(), *([namespace] if namespace else []), name]
    return "-".join(parts) + ".yaml"


def combine(results: Sequence[Rendered]) -> Rendered:
    return Rendered(
        manifests=tuple(m for r in results for m in r.manifests),
        prune=tuple(p for r in results for p in r.prune),
        documents=tuple(d for r in results for d in r.documents),
        statuses=tuple(s for r in results for s in r.statuses),
        summaries=tuple(s for r in results for s in r.summaries),
        finalizers=tuple(f for r in results for f in r.finalizers),
    )


def bus_conditions(items: Iterable[common.Condition]) -> tuple[base.Condition, ...]:
    """A resource status's conditions as a status summary on the bus carries them (the two
    models have the same fields; `resource_condition` goes the other way)."""
    return tuple(base.Condition.model_validate(c.model_dump()) for c in items)


def resource_condition(condition: base.Condition) -> common.Condition:
    """A bus condition as a resource's status carries it."""
    return common.Condition.model_validate(condition.model_dump())


def rfc3339(moment: datetime.datetime | None) -> str | None:
    """A time as status fields carry it (`2026-11-22T06:00:00Z`); None stays None."""
    if moment is None:
        return None
    return moment.astimezone(datetime.UTC).isoformat().replace("+00:00", "Z")
