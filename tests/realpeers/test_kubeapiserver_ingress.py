"""Every object the ingress renderer makes for the seed TailscaleGateway examples, judged by
the real kube-apiserver with the upstream CRDs installed: the Gateway API (standard channel),
Envoy Gateway and cert-manager at the versions `testing/peers/crds/go.mod` pins, taken from the
YAML their Go modules ship (`make peers`), as envtest users load them.

Each case's manifests go through `kubectl apply --server-side --validate=strict` with the
built kubectl (field manager `tailwire`, as the renderer applies them), so the CRDs' OpenAPI
schemas (types, enums, patterns, unknown fields) and their CEL rules are checked by the
server; no warning may come back, and the server keeps every field as written. Then the
renderer's own adapter (`services/renderer/adapters/kube`) applies them again (its REST paths
and scopes for each kind must be the ones the CRDs serve), finds exactly them through its
prune scopes (label selectors), and deletes them.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tailwire.services.renderer import domain
from tailwire.services.renderer.adapters import kube as renderer_kube
from tailwire.testing import kubeapiserver, peers
from tests.realpeers import ingress

pytestmark = pytest.mark.real_peers

# What the renderer makes, and where the CRDs installed here serve it.
SERVED = {
    ("gateway.networking.k8s.io", "v1"): {"gatewayclasses", "gateways", "httproutes"},
    ("gateway.networking.k8s.io", "v1beta1"): {"referencegrants"},
    ("gateway.envoyproxy.io", "v1alpha1"): {
        "envoyproxies",
        "backends",
        "backendtrafficpolicies",
        "clienttrafficpolicies",
    },
    ("cert-manager.io", "v1"): {"certificates"},
}


def _dump(manifests: tuple[domain.Manifest, ...]) -> str:
    return "---\n".join(yaml.safe_dump(m, sort_keys=False) for m in manifests)


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


def test_the_upstream_crds_are_served_at_the_pinned_versions(
    kube_apiserver: kubeapiserver.KubeAPIServer, upstream_crds: list[str]
) -> None:
    for (group, version), plurals in SERVED.items():
        listing = kube_apiserver.request("GET", f"/apis/{group}/{version}")
        assert plurals <= {r["name"] for r in listing["resources"]}, (group, version)
    routes = kube_apiserver.get(f"{kubeapiserver.CRD_PATH}/httproutes.gateway.networking.k8s.io")
    assert routes is not None
    annotations = routes["metadata"]["annotations"]
    assert (
        annotations["gateway.networking.k8s.io/bundle-version"]
        == (peers.CRD_MODULES["gateway-api"][1])
    )
    assert annotations["gateway.networking.k8s.io/channel"] == "standard"
    assert "envoyproxies.gateway.envoyproxy.io" in upstream_crds
    assert "certificates.cert-manager.io" in upstream_crds


@pytest.mark.parametrize("name", sorted(ingress.CASES))
async def test_rendered_objects_are_accepted_by_the_real_server(
    kube_apiserver: kubeapiserver.KubeAPIServer, upstream_crds: list[str], name: str
) -> None:
    rendered = ingress.render(name)
    manifests = rendered.manifests
    assert manifests
    namespaces = {m["metadata"].get("namespace") for m in manifests} - {None}
    for namespace in sorted(namespaces):
        kube_apiserver.create_namespace(namespace)
    keys = {domain.object_key(m) for m in manifests}
    writer = renderer_kube.KubeWriter(client_factory=kube_apiserver.api_client)
    try:
        applied = kube_apiserver.kubectl(
            "apply",
            "--server-side",
            f"--field-manager={renderer_kube.FIELD_MANAGER}",
            "--force-conflicts",
            "--validate=strict",
            "-f",
            "-",
            input_=_dump(manifests),
        )
        assert "Warning" not in applied.stderr, applied.stderr
        for manifest in manifests:
            stored = kube_apiserver.get(kubeapiserver.object_path(manifest))
            assert stored is not None, manifest["metadata"]
            # Everything the renderer wrote is kept as written (the server only adds defaults).
            body = {k: v for k, v in manifest.items() if k not in ("apiVersion", "kind")}
            assert _contains(stored, body), (stored, manifest)

        # The renderer's own adapter: the same objects at the paths it computes, a no-op now.
        for manifest in manifests:
            await writer.apply(manifest)
        found = set()
        for scope in rendered.prune:
            found.update(await writer.list_managed(scope))
        assert found == keys
    finally:
        for key in sorted(keys):
            await writer.delete(key)
        await writer.close()
    for manifest in manifests:
        assert kube_apiserver.get(kubeapiserver.object_path(manifest)) is None


def _refusal(server: kubeapiserver.KubeAPIServer, manifest: domain.Manifest) -> str:
    result = server.kubectl(
        "apply",
        "--server-side",
        "--validate=strict",
        "-f",
        "-",
        input_=yaml.safe_dump(manifest),
        check=False,
    )
    assert result.returncode != 0, result.stdout
    assert server.get(kubeapiserver.object_path(manifest)) is None
    return result.stderr


def test_the_real_server_runs_the_crds_cel_rules(
    kube_apiserver: kubeapiserver.KubeAPIServer, upstream_crds: list[str]
) -> None:
    """The checks above mean something: the CRDs' CEL rules refuse a broken rendered object."""
    rendered = ingress.render("advanced-routing")
    route = next(
        m
        for m in ingress.of_kind(rendered, "HTTPRoute")
        if any(f["type"] == "URLRewrite" for r in m["spec"]["rules"] for f in r.get("filters", []))
    )
    kube_apiserver.create_namespace(route["metadata"]["namespace"])
    broken = yaml.safe_load(yaml.safe_dump(route))
    rewrite = next(
        f["urlRewrite"]
        for r in broken["spec"]["rules"]
        for f in r.get("filters", [])
        if f["type"] == "URLRewrite"
    )
    rewrite["path"]["type"] = "ReplaceFullPath"  # keeping replacePrefixMatch: CEL says no
    refused = _refusal(kube_apiserver, broken)
    assert "replaceFullPath must be specified when type is set to 'ReplaceFullPath'" in refused

    (policy, *_) = ingress.of_kind(rendered, "BackendTrafficPolicy")
    broken = yaml.safe_load(yaml.safe_dump(policy))
    broken["spec"]["targetRef"] = broken["spec"]["targetRefs"][0]  # both: CEL says no
    refused = _refusal(kube_apiserver, broken)
    assert "either targetRef or targetRefs must be used" in refused, refused
