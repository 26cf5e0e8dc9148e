"""RBAC of `deploy/base` as data: the rules bound to each service account, and whether a
recorded Kubernetes API call is allowed by them.

The manifests are rendered with `kubectl kustomize deploy/base` (what a user applies).
A rule grants (apiGroup, resource, verb); a Role only in its own namespace, a ClusterRole
bound by a ClusterRoleBinding everywhere. Resource names are ignored (none are restricted).
"""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tailwire.testing import peers

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "base"
NAMESPACE = "tailwire-system"


@dataclasses.dataclass(frozen=True, order=True)
class Grant:
    group: str
    resource: str  # "pods", or "egressgroups/status"
    verb: str
    namespace: str | None  # None: cluster-wide


def render() -> list[dict[str, Any]]:
    kubectl = peers.binary("kubectl")  # the pinned release's, built by `make peers`
    out = subprocess.run(
        [kubectl, "kustomize", str(DEPLOY)], capture_output=True, text=True, check=True
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def grants(documents: list[dict[str, Any]], *, service_account: str) -> set[Grant]:
    """Everything the service account may do, expanded to single (group, resource, verb)."""
    roles = {
        (d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]): d
        for d in documents
        if d["kind"] in ("Role", "ClusterRole")
    }
    found: set[Grant] = set()
    for binding in documents:
        if binding["kind"] not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        if not any(
            s.get("kind") == "ServiceAccount"
            and s.get("name") == service_account
            and s.get("namespace", NAMESPACE) == NAMESPACE
            for s in binding.get("subjects") or []
        ):
            continue
        ref = binding["roleRef"]
        scope = binding["metadata"].get("namespace") if binding["kind"] == "RoleBinding" else None
        role_ns = scope if ref["kind"] == "Role" else None
        role = roles[(ref["kind"], role_ns, ref["name"])]
        for rule in role.get("rules") or []:
            for group in rule.get("apiGroups") or []:
                for resource in rule.get("resources") or []:
                    for verb in rule.get("verbs") or []:
                        found.add(Grant(group, resource, verb, scope))
    return found


def allowed(call: Grant, granted: set[Grant]) -> bool:
    return any(
        g.group == call.group
        and g.resource == call.resource
        and g.verb == call.verb
        and (g.namespace is None or g.namespace == call.namespace)
        for g in granted
    )


def used(grant: Grant, calls: set[Grant]) -> bool:
    return any(
        c.group == grant.group
        and c.resource == grant.resource
        and c.verb == grant.verb
        and (grant.namespace is None or c.namespace == grant.namespace)
        for c in calls
    )
