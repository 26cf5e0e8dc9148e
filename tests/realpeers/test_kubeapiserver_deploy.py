"""Every overlay of deploy/ is accepted, object by object, by the real kube-apiserver with
the upstream CRDs installed (server-side dry run): the bus CA and the NATS certificate of the
TLS default (issue 18, finding 5) against cert-manager's own schema, the HA overlay's
certificate patch included, and the plain opt-out without them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tailwire.testing import kubeapiserver

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"

pytestmark = pytest.mark.real_peers


@pytest.mark.parametrize("overlay", ["base", "overlays/ha", "overlays/plain", "overlays/dev"])
def test_the_real_api_server_accepts_every_object_of_the_overlay(
    kube_apiserver: kubeapiserver.KubeAPIServer, upstream_crds: list[str], overlay: str
) -> None:
    text = kube_apiserver.kubectl("kustomize", str(DEPLOY / overlay)).stdout
    # A dry run creates nothing, so the objects' namespace must exist first.
    for document in kubeapiserver.kustomize(DEPLOY / overlay):
        if document["kind"] == "Namespace":
            kube_apiserver.apply(document)
    result = kube_apiserver.kubectl(
        "apply", "--dry-run=server", "--server-side", "-f", "-", input_=text, check=False
    )
    assert result.returncode == 0, result.stderr
    kinds = {line.split("/", 1)[0] for line in result.stdout.splitlines()}
    if overlay == "overlays/plain":
        assert not any("cert-manager" in k for k in kinds), kinds
    else:
        assert "certificate.cert-manager.io" in kinds, kinds
