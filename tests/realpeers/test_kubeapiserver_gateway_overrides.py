"""Issue 17, gateway overrides: the gateway DaemonSet a group with every override renders is
accepted by the real kube-apiserver (a server-side dry run: strict field validation of the
pod template, tolerations, resources, priority class, labels, annotations, image), and so is
the EgressGroup itself against the CRD tailwire generates."""

from __future__ import annotations

import json

import pytest

from tailwire.testing import kubeapiserver
from tests.renderer.test_gateway_overrides import OVERRIDES, _group, daemon_set

pytestmark = pytest.mark.real_peers


def test_the_real_api_server_accepts_the_overridden_gateway_and_group(
    kube_apiserver: kubeapiserver.KubeAPIServer,
) -> None:
    kube_apiserver.apply({"apiVersion": "v1", "kind": "Namespace",
                          "metadata": {"name": "tailwire-system"}})  # fmt: skip
    for manifest in (daemon_set(OVERRIDES), _group(OVERRIDES)):
        result = kube_apiserver.kubectl(
            "apply", "--dry-run=server", "--server-side", "--validate=strict",
            "--field-manager=tailwire", "-f", "-",
            input_=json.dumps(manifest), check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert "Warning" not in result.stderr, result.stderr
