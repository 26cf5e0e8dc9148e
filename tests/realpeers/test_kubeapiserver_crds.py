"""The CRDs of `deploy/crds/` on the real kube-apiserver (issue 13, proof 8's first part).

The session's server installed them (`kubeapiserver.install_crds`, `kubectl kustomize
deploy/crds` with the built kubectl, server-side applied). Checked here with the server's own
judgement: every CRD is established with accepted names and a structural schema (the server
refuses defaults and pruning otherwise and says so in a NonStructuralSchema condition); the
printer columns come out of `kubectl get -o wide`, defaults from the schema applied; and the
status subresource keeps status and spec apart: a write through `/status` is kept and
changes no spec, a write to the object changes no status.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tailwire.testing import kubeapiserver

pytestmark = pytest.mark.real_peers

CRD_FILES = sorted(p for p in kubeapiserver.CRDS.glob("*.yaml") if p.name != "kustomization.yaml")
NAMESPACE = "crd-tests"
READY = {
    "type": "Ready",
    "status": "True",
    "reason": "Reconciled",
    "lastTransitionTime": "2026-01-02T03:04:05Z",
}


def _crd(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(path.read_text())
    return document


@dataclasses.dataclass(frozen=True)
class Case:
    object: dict[str, Any]
    status: dict[str, Any]
    # Printer column (as kubectl heads it) -> the cell expected in `kubectl get -o wide`.
    cells: dict[str, str]
    # A change to the spec, merged into the object to see status stay as it was.
    spec_change: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.object["kind"])

    @property
    def name(self) -> str:
        return str(self.object["metadata"]["name"])

    @property
    def namespace(self) -> str | None:
        namespace = self.object["metadata"].get("namespace")
        return str(namespace) if namespace else None


CASES = [
    Case(
        object={
            "apiVersion": "tailscale.rajsingh.info/v1alpha1",
            "kind": "EgressGroup",
            "metadata": {"name": "crd-test-group"},
            "spec": {
                "selector": {"podSelector": {"matchLabels": {"app": "api"}}},
                "mode": "subnet",
                "routes": ["10.0.0.0/8"],
            },
        },
        status={"matchedPods": 2, "conditions": [READY]},
        # ATTACH is the schema's default, filled in by the server.
        cells={"MODE": "subnet", "ATTACH": "routed", "PODS": "2", "READY": "True"},
        spec_change={"mode": "cgnat"},
    ),
    Case(
        object={
            "apiVersion": "gateway.tailscale.com/v1alpha1",
            "kind": "TailscaleTailnet",
            "metadata": {"name": "crd-test-tailnet"},
            "spec": {
                "tailnet": "company.ts.net",
                "oauthSecretName": "tailscale-oauth",
                "oauthSecretNamespace": "tailwire-system",
            },
        },
        status={
            "conditions": [READY],
            "lastConnected": "2026-01-02T03:04:05Z",
            "tailnetInfo": {"name": "company.ts.net"},
        },
        cells={
            "TAILNET": "company.ts.net",
            "BACKEND": "tailscale",
            "READY": "True",
            "REASON": "Reconciled",
        },
        spec_change={"tailnet": "other.ts.net"},
    ),
    Case(
        object={
            "apiVersion": "gateway.tailscale.com/v1alpha1",
            "kind": "TailscaleGateway",
            "metadata": {"name": "crd-test-gateway", "namespace": NAMESPACE},
            "spec": {
                "gatewayRef": {"kind": "Gateway", "name": "envoy-gateway"},
                "tailnets": [
                    {
                        "name": "main-tailnet",
                        "tailscaleTailnetRef": {"kind": "TailscaleTailnet", "name": "main"},
                    }
                ],
            },
        },
        status={"conditions": [READY], "gatewayInfo": {"listenerCount": 1, "routeCount": 3}},
        cells={"GATEWAY": "envoy-gateway", "ROUTES": "3", "READY": "True"},
        spec_change={"gatewayRef": {"kind": "Gateway", "name": "other-gateway"}},
    ),
]


def test_every_crd_is_established_with_a_structural_schema(
    kube_apiserver: kubeapiserver.KubeAPIServer,
) -> None:
    assert len(CRD_FILES) == 3
    for path in CRD_FILES:
        crd = _crd(path)
        name = crd["metadata"]["name"]
        served = kube_apiserver.get(f"{kubeapiserver.CRD_PATH}/{name}")
        assert served is not None, name
        conditions = {c["type"]: c for c in served["status"]["conditions"]}
        assert conditions["Established"]["status"] == "True", conditions
        assert conditions["NamesAccepted"]["status"] == "True", conditions
        # The server sets NonStructuralSchema (status True) on a schema it cannot prune by.
        assert conditions.get("NonStructuralSchema", {}).get("status") != "True", conditions
        assert served["status"]["acceptedNames"]["kind"] == crd["spec"]["names"]["kind"]
        # Discovery lists the resource and its status subresource, as kubectl sees them.
        group, version = crd["spec"]["group"], crd["spec"]["versions"][0]["name"]
        discovery = kube_apiserver.request("GET", f"/apis/{group}/{version}")
        plural = crd["spec"]["names"]["plural"]
        resources = {r["name"]: r for r in discovery["resources"]}
        assert {plural, f"{plural}/status"} <= set(resources), sorted(resources)
        assert resources[plural].get("shortNames", []) == crd["spec"]["names"].get("shortNames", [])


def test_every_crd_has_a_case_here() -> None:
    assert sorted(_crd(p)["spec"]["names"]["kind"] for p in CRD_FILES) == sorted(
        c.kind for c in CASES
    )


def _path(case: Case) -> str:
    return kubeapiserver.object_path(case.object)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.kind)
def test_printer_columns_show_spec_defaults_and_status(
    kube_apiserver: kubeapiserver.KubeAPIServer, case: Case
) -> None:
    kube_apiserver.create_namespace(NAMESPACE)
    kube_apiserver.apply(case.object)
    kube_apiserver.request(
        "PATCH",
        _path(case) + "/status",
        body={"status": case.status},
        content_type="application/merge-patch+json",
    )
    crd = next(_crd(p) for p in CRD_FILES if _crd(p)["spec"]["names"]["kind"] == case.kind)
    columns = crd["spec"]["versions"][0]["additionalPrinterColumns"]
    plural = crd["spec"]["names"]["plural"]
    scope = ["-n", case.namespace] if case.namespace else []
    out = kube_apiserver.kubectl(
        "get", f"{plural}.{crd['spec']['group']}", case.name, *scope, "-o", "wide"
    ).stdout
    header, row = (re.split(r"\s{2,}", line.strip()) for line in out.strip().splitlines())
    assert header == ["NAME", *(c["name"].upper() for c in columns)]
    cells = dict(zip(header, row, strict=True))
    assert cells["NAME"] == case.name
    assert {k: cells[k] for k in case.cells} == case.cells, out
    # The short name works too (what users type).
    for short in crd["spec"]["names"].get("shortNames") or []:
        assert case.name in kube_apiserver.kubectl("get", short, case.name, *scope).stdout


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.kind)
def test_status_subresource_keeps_status_and_spec_apart(
    kube_apiserver: kubeapiserver.KubeAPIServer, case: Case
) -> None:
    kube_apiserver.create_namespace(NAMESPACE)
    name = case.name + "-status"
    obj = {**case.object, "metadata": {**case.object["metadata"], "name": name}}
    path = kubeapiserver.object_path(obj)
    created = kube_apiserver.apply(obj)
    generation = created["metadata"]["generation"]

    # A status write through /status is kept; a spec carried along is ignored there.
    changed_spec = {"spec": {"tags": ["tag:elsewhere"]}} if case.kind == "EgressGroup" else {}
    written = kube_apiserver.request(
        "PATCH",
        path + "/status",
        body={"status": case.status, **changed_spec},
        content_type="application/merge-patch+json",
    )
    assert written["spec"] == created["spec"]
    assert written["metadata"]["generation"] == generation
    read = kube_apiserver.get(path)
    assert read is not None
    # The schema's defaults fill in what the write left out (a condition's message).
    assert read["status"]["conditions"] == [{**READY, "message": ""}]
    for key, value in case.status.items():
        if key != "conditions":
            assert read["status"][key] == value, (key, read["status"])

    # A write to the object changes its spec (and generation), never its status.
    spec_change = case.spec_change
    patched = kube_apiserver.request(
        "PATCH",
        path,
        body={"spec": spec_change, "status": {"conditions": []}},
        content_type="application/merge-patch+json",
    )
    assert patched["metadata"]["generation"] == generation + 1
    assert patched["status"] == read["status"]
    for key, value in spec_change.items():
        assert patched["spec"][key] == value
    # Server-side apply of the object with a status: still no status change.
    applied = kube_apiserver.apply({**obj, "status": {"conditions": []}})
    assert applied["status"] == read["status"]
