"""Every example in `examples/` (all of which `tailwire validate` accepts) applied to the real
kube-apiserver after the CRDs: `kubectl apply --server-side` with the built kubectl and
strict field validation, so the server's own schema checks (types, enums, unknown fields,
defaults) judge them, not tailwire's models. Besides tailwire's CRDs the server has the
upstream ones (`upstream_crds`: Gateway API, Envoy Gateway, cert-manager), so the HTTPRoute
examples are judged by the Gateway API's own schema and CEL rules too."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tailwire.testing import kubeapiserver

pytestmark = pytest.mark.real_peers

EXAMPLES = kubeapiserver.CRDS.parents[1] / "examples"
ALL = sorted(EXAMPLES.glob("*.yaml"))


def _documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_example_applies_cleanly(
    kube_apiserver: kubeapiserver.KubeAPIServer, upstream_crds: list[str], path: Path
) -> None:
    documents = _documents(path)
    for namespace in sorted({d["metadata"].get("namespace") for d in documents} - {None}):
        kube_apiserver.create_namespace(namespace)
    result = kube_apiserver.kubectl(
        "apply",
        "--server-side",
        "--field-manager=tailwire-examples",
        "--validate=strict",
        "-f",
        str(path),
    )
    assert "Warning" not in result.stderr, result.stderr
    try:
        for document in documents:
            stored = kube_apiserver.get(kubeapiserver.object_path(document))
            assert stored is not None, document["metadata"]
            assert stored["metadata"]["uid"]
            if "spec" in document:
                # Everything the example says is kept as written (the server only adds).
                assert _contains(stored["spec"], document["spec"]), (stored["spec"], document)
    finally:
        # Not the Namespaces an example declares (homelab-stack's, with their consent): the
        # server is shared by the session, and a terminating namespace refuses later tests.
        removable = [d for d in documents if d["kind"] != "Namespace"]
        kube_apiserver.kubectl(
            "delete", "--wait=false", "-f", "-", input_=yaml.safe_dump_all(removable)
        )


def _contains(stored: Any, written: Any) -> bool:
    if isinstance(written, dict):
        return isinstance(stored, dict) and all(
            k in stored and _contains(stored[k], v) for k, v in written.items()
        )
    if isinstance(written, list):
        return (
            isinstance(stored, list)
            and len(stored) == len(written)
            and all(_contains(s, w) for s, w in zip(stored, written, strict=True))
        )
    return bool(stored == written)


def _apply_group(server: kubeapiserver.KubeAPIServer, spec: dict[str, Any]) -> str:
    group = {
        "apiVersion": "tailscale.rajsingh.info/v1alpha1",
        "kind": "EgressGroup",
        "metadata": {"name": "example-refused"},
        "spec": spec,
    }
    result = server.kubectl(
        "apply",
        "--server-side",
        "--validate=strict",
        "-f",
        "-",
        input_=yaml.safe_dump(group),
        check=False,
    )
    assert result.returncode != 0, result.stdout
    return result.stderr


def test_the_real_server_refuses_what_the_schema_forbids(
    kube_apiserver: kubeapiserver.KubeAPIServer,
) -> None:
    """The checks above mean something: a bad group is refused, field by field."""
    refused = _apply_group(kube_apiserver, {"selector": {}, "mode": "bogus", "replicas": 99})
    assert 'spec.mode: Unsupported value: "bogus"' in refused, refused
    assert "spec.replicas: Invalid value: 99" in refused, refused
    refused = _apply_group(kube_apiserver, {"selector": {}, "extra": 1})
    assert ".spec.extra: field not declared in schema" in refused, refused
    path = "/apis/tailscale.rajsingh.info/v1alpha1/egressgroups/example-refused"
    assert kube_apiserver.get(path) is None
