"""CustomResourceDefinition objects and the resources they serve, kept in step.

Responsible for: converting a :class:`~.resources.ResourceSpec` to a CRD
manifest and back; and the storage hook that makes a CRD written through the
API (``kubectl apply -f crd.yaml``, ``api.install(spec)``) serve its
resource, mark itself ``Established`` as the apiextensions controller does,
and, when the CRD is deleted, delete its objects, end its watches and stop
serving it (404 from then on).

Must not: validate OpenAPI schemas (objects are stored as given), convert
between versions, or honour the CRD's own cleanup finalizer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import journal, resources, storage

JSON = dict[str, Any]
MANAGER = "kube-apiserver"  # the apiextensions controller runs inside the API server


def name_of(spec: resources.ResourceSpec) -> str:
    return f"{spec.plural}.{spec.group}"


def to_crd(spec: resources.ResourceSpec) -> JSON:
    names: JSON = {"plural": spec.plural, "singular": spec.singular_name, "kind": spec.kind}
    names["listKind"] = spec.list_kind
    if spec.short_names:
        names["shortNames"] = list(spec.short_names)
    if spec.categories:
        names["categories"] = list(spec.categories)
    version: JSON = {
        "name": spec.version,
        "served": True,
        "storage": True,
        "schema": {
            "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
        },
    }
    if spec.status:
        version["subresources"] = {"status": {}}
    if spec.field_selectors:
        version["selectableFields"] = [{"jsonPath": f".{f}"} for f in sorted(spec.field_selectors)]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": name_of(spec)},
        "spec": {
            "group": spec.group,
            "names": names,
            "scope": "Namespaced" if spec.namespaced else "Cluster",
            "versions": [version],
        },
    }


def to_specs(crd: Mapping[str, Any]) -> list[resources.ResourceSpec]:
    """One spec per served version of the CRD."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    result: list[resources.ResourceSpec] = []
    for version in spec.get("versions") or []:
        if not version.get("served", True):
            continue
        selectable = {f["jsonPath"].lstrip(".") for f in version.get("selectableFields") or []}
        result.append(
            resources.ResourceSpec(
                group=spec.get("group", ""),
                version=version["name"],
                plural=names.get("plural", ""),
                kind=names.get("kind", ""),
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                status="status" in (version.get("subresources") or {}),
                custom=True,
                delete_returns_object=True,
                generation=True,
                singular=names.get("singular", ""),
                short_names=tuple(names.get("shortNames") or ()),
                categories=tuple(names.get("categories") or ()),
                field_selectors=frozenset(selectable),
            )
        )
    return result


def _established(crd: Mapping[str, Any]) -> JSON:
    spec = crd.get("spec") or {}
    conditions = [
        {"type": kind, "status": "True", "reason": reason, "message": message}
        for kind, reason, message in (
            ("NamesAccepted", "NoConflicts", "no conflicts found for the names"),
            ("Established", "InitialNamesAccepted", "the initial names have been accepted"),
        )
    ]
    return {
        "acceptedNames": spec.get("names") or {},
        "conditions": conditions,
        "storedVersions": [v["name"] for v in spec.get("versions") or [] if v.get("storage")],
    }


def link(store: storage.Store) -> None:
    """Make CRD objects in ``store`` drive what ``store.catalog`` serves."""

    def on_commit(event: journal.Event) -> None:
        if event.spec.key != resources.CRD.key:
            return
        old = {s.key: s for s in to_specs(event.old or {})}
        new = {} if event.type == "DELETED" else {s.key: s for s in to_specs(event.obj)}
        for key, spec in old.items():
            if key not in new:
                store.drop_resource(spec)
                store.catalog.uninstall(spec)
        for spec in new.values():
            store.catalog.install(spec)
        conditions = (event.obj.get("status") or {}).get("conditions") or []
        if new and not any(c.get("type") == "Established" for c in conditions):
            store.patch(
                resources.CRD,
                {"status": _established(event.obj)},
                namespace=None,
                name=event.obj["metadata"]["name"],
                patch_type="merge",
                subresource="status",
                manager=MANAGER,
            )

    store.on_commit.append(on_commit)
