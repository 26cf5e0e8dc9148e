"""Issue 18, finding 1: tailwire never takes over an object it did not create. On the real
kube-apiserver, the renderer's apply adapter refuses an existing Service in kube-system and a
shared GatewayClass that someone else made (a Conflict naming their field manager) and leaves
them exactly as they were, so a later prune cannot delete them either; its own objects it
still applies with force (drift taken back)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tailwire.services.renderer.adapters import kube as renderer_kube
from tailwire.shared import errors
from tailwire.shared.k8s import labels
from tailwire.testing import kubeapiserver

pytestmark = pytest.mark.real_peers

MINE = {labels.MANAGED_BY: labels.MANAGED_BY_VALUE}


def _service(name: str, *, port: int, extra_labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "kube-system", "labels": extra_labels or {}},
        "spec": {
            "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
            "selector": {"app": name},
        },
    }


def _gateway_class(
    name: str, *, controller: str, extra_labels: dict[str, str] | None = None
) -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "GatewayClass",
        "metadata": {"name": name, "labels": extra_labels or {}},
        "spec": {"controllerName": controller},
    }


@pytest.fixture
async def writer(
    kube_apiserver: kubeapiserver.KubeAPIServer,
) -> AsyncIterator[renderer_kube.KubeWriter]:
    kube_writer = renderer_kube.KubeWriter(client_factory=kube_apiserver.api_client)
    yield kube_writer
    await kube_writer.close()


async def test_someone_elses_service_and_gateway_class_are_refused_and_left_alone(
    kube_apiserver: kubeapiserver.KubeAPIServer,
    upstream_crds: list[str],
    writer: renderer_kube.KubeWriter,
) -> None:
    kube_apiserver.apply(_service("dns-victim", port=53), field_manager="kubectl")
    kube_apiserver.apply(
        _gateway_class("shared-eg", controller="example.com/theirs"), field_manager="helm"
    )
    with pytest.raises(errors.Conflict, match=r"not tailwire's \(managed by kubectl\)"):
        await writer.apply(_service("dns-victim", port=8080, extra_labels=MINE))
    with pytest.raises(errors.Conflict, match=r"managed by helm"):
        await writer.apply(
            _gateway_class("shared-eg", controller="gateway.envoyproxy.io/x", extra_labels=MINE)
        )
    service = kube_apiserver.get("/api/v1/namespaces/kube-system/services/dns-victim") or {}
    assert service["spec"]["ports"][0]["port"] == 53
    assert labels.MANAGED_BY not in (service["metadata"].get("labels") or {})
    klass = kube_apiserver.get("/apis/gateway.networking.k8s.io/v1/gatewayclasses/shared-eg") or {}
    assert klass["spec"]["controllerName"] == "example.com/theirs"


def _config_map(value: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "tailwire-own", "namespace": "kube-system", "labels": MINE},
        "data": {"setting": value},
    }


async def test_its_own_objects_are_created_and_drift_is_taken_back(
    kube_apiserver: kubeapiserver.KubeAPIServer, writer: renderer_kube.KubeWriter
) -> None:
    await writer.apply(_config_map("tailwire's"))
    # Someone edits a field tailwire manages, with another field manager.
    kube_apiserver.apply(_config_map("hijacked"), field_manager="kubectl")
    fresh = renderer_kube.KubeWriter(client_factory=kube_apiserver.api_client)  # a restart
    try:
        await fresh.apply(_config_map("tailwire's"))
    finally:
        await fresh.close()
    found = kube_apiserver.get("/api/v1/namespaces/kube-system/configmaps/tailwire-own") or {}
    assert found["data"] == {"setting": "tailwire's"}
