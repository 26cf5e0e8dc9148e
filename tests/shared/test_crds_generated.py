"""The CRDs in deploy/crds are exactly what the models generate, and are structural."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tailwire.shared.resources import crds

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "crds"


def test_deploy_crds_are_not_stale() -> None:
    for name, text in crds.files().items():
        path = DEPLOY / name
        assert path.exists(), f"{path} missing: run `tailwire crds -o deploy/crds`"
        assert path.read_text() == text, f"{path} is stale: run `tailwire crds -o deploy/crds`"


def _walk(node: dict[str, Any], where: str) -> list[str]:
    """Structural-schema rules Kubernetes enforces: a type (or an escape hatch) everywhere,
    no $ref/anyOf, and nullable only beside a type."""
    bad = []
    if "$ref" in node or "anyOf" in node or "oneOf" in node:
        bad.append(f"{where}: $ref/anyOf/oneOf")
    if not (
        {"type", "x-kubernetes-preserve-unknown-fields", "x-kubernetes-int-or-string"} & set(node)
    ):
        bad.append(f"{where}: no type")
    for name, sub in node.get("properties", {}).items():
        bad += _walk(sub, f"{where}.{name}")
    if isinstance(node.get("items"), dict):
        bad += _walk(node["items"], f"{where}[]")
    if isinstance(node.get("additionalProperties"), dict):
        bad += _walk(node["additionalProperties"], f"{where}{{}}")
    return bad


def test_schemas_are_structural_and_name_the_seed_fields() -> None:
    for crd in crds.CRDS:
        doc = yaml.safe_load(crds.render_yaml(crd))
        version = doc["spec"]["versions"][0]
        schema = version["schema"]["openAPIV3Schema"]
        assert _walk(schema, crd.kind) == []
        assert version["subresources"] == {"status": {}}
    eg = yaml.safe_load(crds.render_yaml(crds.CRDS[0]))
    spec = eg["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"][
        "properties"
    ]
    assert {
        "selector",
        "mode",
        "routes",
        "acceptRoutes",
        "exitNode",
        "replicas",
        "attach",
        "datapath",
        "tags",
        "dns",
        "gateway",
    } <= set(spec)
    assert set(spec["exitNode"]["properties"]) == {"nodeID", "name", "allowLANAccess"}
    assert eg["spec"]["names"]["shortNames"] == ["eg"]
    assert eg["spec"]["scope"] == "Cluster"
