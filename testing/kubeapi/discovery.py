"""Discovery: ``/version``, ``/api``, ``/apis``, ``/apis/<g>``, ``/api/v1``, ``/apis/<g>/<v>``.

Responsible for: describing exactly the resources in the catalogue at the
moment of the request (so a CRD installed at runtime appears, and one
removed disappears), in the legacy (non-aggregated) discovery shapes that
kubernetes-asyncio, kopf and ``kubectl`` all understand.

Must not: serve objects; returns None where the server answers 404.
"""

from __future__ import annotations

from typing import Any

from . import resources

JSON = dict[str, Any]

# What the emulator claims to be; recent enough for every API the project uses.
SERVER_VERSION: JSON = {
    "major": "1",
    "minor": "33",
    "gitVersion": "v1.33.0+tailwire-kubeapi",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.24.0",
    "compiler": "gc",
    "platform": "linux/amd64",
}


def api_versions() -> JSON:
    return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}


def _group(name: str, versions: list[str]) -> JSON:
    entries = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"name": name, "versions": entries, "preferredVersion": entries[0]}


def group_list(catalog: resources.Catalog) -> JSON:
    groups = [_group(name, versions) for name, versions in catalog.groups().items() if name]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def group(catalog: resources.Catalog, name: str) -> JSON | None:
    versions = catalog.groups().get(name)
    if not name or not versions:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group(name, versions)}


def resource_list(catalog: resources.Catalog, *, group: str, version: str) -> JSON | None:
    specs = [s for s in catalog if (s.group, s.version) == (group, version)]
    if not specs:
        return None
    entries: list[JSON] = []
    for spec in specs:
        entries.append(
            {
                "name": spec.plural,
                "singularName": spec.singular_name,
                "namespaced": spec.namespaced,
                "kind": spec.kind,
                "verbs": list(resources.STANDARD_VERBS),
                "shortNames": list(spec.short_names),
                "categories": list(spec.categories),
            }
        )
        if spec.status:
            entries.append(
                {
                    "name": f"{spec.plural}/status",
                    "singularName": "",
                    "namespaced": spec.namespaced,
                    "kind": spec.kind,
                    "verbs": ["get", "patch", "update"],
                }
            )
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": entries,
    }
