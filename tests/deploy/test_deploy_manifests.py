"""deploy/: every overlay renders with `kubectl kustomize` and every object passes its schema;
the NATS config is what shared.permissions generates; compose follows the Compose spec."""

from __future__ import annotations

import json
import subprocess
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tailwire.testing import peers

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
OVERLAYS = ["base", "overlays/dev", "overlays/ha", "overlays/plain"]
# Kinds of other projects' CRDs, which kubernetes-validate has no schema for (the TLS
# base's cert-manager objects are checked in test_deploy_nats_tls.py).
FOREIGN_API_GROUPS = ("cert-manager.io/",)
KUBERNETES_VERSION = "1.33"


def render(overlay: str) -> list[dict[str, Any]]:
    result = subprocess.run(
        [peers.binary("kubectl"), "kustomize", str(DEPLOY / overlay)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_and_every_object_is_schema_valid(overlay: str) -> None:
    objects = render(overlay)
    problems = []
    for obj in objects:
        if obj["apiVersion"].startswith(FOREIGN_API_GROUPS):
            continue
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            problems.append(f"{obj['kind']}/{obj['metadata']['name']}: {exc.message}")
    assert problems == []
    kinds = {o["kind"] for o in objects}
    assert {
        "CustomResourceDefinition",
        "Deployment",
        "DaemonSet",
        "StatefulSet",
        "NetworkPolicy",
    } <= kinds


def test_each_service_has_its_own_service_account_and_the_nodeagent_no_api_access() -> None:
    objects = render("base")
    workloads = {
        o["metadata"]["name"]: o for o in objects if o["kind"] in ("Deployment", "DaemonSet")
    }
    accounts = {w["spec"]["template"]["spec"]["serviceAccountName"] for w in workloads.values()}
    assert len(accounts) == len(workloads) == 5
    agent = workloads["tailwire-nodeagent"]["spec"]["template"]["spec"]
    # Issue 18 (medium 5): no hostNetwork, so NATS admits the agent by label, not from any
    # address; the runtime's seccomp profile.
    assert "hostNetwork" not in agent
    assert agent["hostPID"]
    assert agent["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert agent["automountServiceAccountToken"] is False
    caps = agent["containers"][0]["securityContext"]["capabilities"]
    assert caps == {"drop": ["ALL"], "add": ["NET_ADMIN", "SYS_ADMIN", "SYS_PTRACE"]}
    bound = {s["name"] for o in objects if o["kind"].endswith("Binding") for s in o["subjects"]}
    assert "tailwire-nodeagent" not in bound
    watcher_rules = next(
        o
        for o in objects
        if o["kind"] == "ClusterRole" and o["metadata"]["name"] == "tailwire-watcher"
    )
    assert {v for r in watcher_rules["rules"] for v in r["verbs"]} == {"get", "list", "watch"}


def test_ha_overlay_runs_a_nats_cluster_and_two_replicas() -> None:
    objects = render("overlays/ha")
    nats = next(o for o in objects if o["kind"] == "StatefulSet")
    assert nats["spec"]["replicas"] == 3
    assert all(o["spec"]["replicas"] == 2 for o in objects if o["kind"] == "Deployment")
    settings = next(
        o
        for o in objects
        if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("tailwire-settings")
    )
    assert settings["data"]["TAILWIRE_STREAM_REPLICAS"] == "3"


def test_compose_file_follows_the_compose_specification() -> None:
    schema_text = (
        resources.files("check_jsonschema.builtin_schemas.vendor")
        .joinpath("compose-spec.json")
        .read_text()
    )
    document = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    jsonschema.validate(document, json.loads(schema_text))
    assert set(document["services"]) >= {
        "nats",
        "watcher",
        "keyminter",
        "renderer",
        "dnsupdater",
        "nodeagent",
        "jaeger",
    }


def test_nats_admits_only_labelled_clients_and_ha_routes_only_between_its_servers() -> None:
    """Issue 18, finding 5: `tailwire-nats-clients` admitted 0.0.0.0/0 on 4222 (for the
    hostNetwork nodeagent), and the HA overlay's 3 servers could not reach each other on 6222
    under base's default-deny."""
    for overlay in OVERLAYS:
        policies = [o for o in render(overlay) if o["kind"] == "NetworkPolicy"]
        for policy in policies:
            for rule in policy["spec"].get("ingress", []):
                assert all("ipBlock" not in peer for peer in rule.get("from", [])), (
                    overlay,
                    policy["metadata"]["name"],
                )
        routes = [
            p for p in policies
            if any(port["port"] == 6222 for r in p["spec"].get("ingress", [])
                   for port in r.get("ports", []))
        ]  # fmt: skip
        if overlay == "overlays/ha":
            (policy,) = routes
            assert policy["spec"]["podSelector"] == {
                "matchLabels": {"app.kubernetes.io/name": "tailwire-nats"}
            }
            (rule,) = policy["spec"]["ingress"]
            assert rule["from"] == [
                {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "tailwire-nats"}}}
            ]
        else:
            assert routes == []
