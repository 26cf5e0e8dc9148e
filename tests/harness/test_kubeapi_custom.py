"""Custom resources in the emulator: scopes, status isolation, generation and patch types.

The project's CRDs exist only in the emulator's catalogue, so these take ``kube_emulator``.
"""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from tailwire.testing import kubeapi

from .kubeapi_helpers import MERGE, content_type, raw_json, status_of

EGRESS = ("tailscale.rajsingh.info", "v1alpha1", "egressgroups")
GATEWAYS = ("gateway.tailscale.com", "v1alpha1", "tailscalegateways")


def egress_group(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "tailscale.rajsingh.info/v1alpha1",
        "kind": "EgressGroup",
        "metadata": {"name": name},
        "spec": spec or {"tailnet": "example"},
        "status": {"phase": "set by the client, dropped by the server"},
    }


@pytest.fixture
async def custom(kube_emulator: kubeapi.KubeAPI) -> Any:
    async with await kube_emulator.api_client() as api_client:
        yield client.CustomObjectsApi(api_client)


async def test_cluster_scoped_and_namespaced_custom_resources(custom: Any) -> None:
    created = await custom.create_cluster_custom_object(*EGRESS, egress_group("eg"))
    assert "namespace" not in created["metadata"]
    assert created["metadata"]["generation"] == 1
    assert "status" not in created  # status is written through /status only

    gateway = {"metadata": {"name": "gw"}, "spec": {"tailnet": "example"}}
    made = await custom.create_namespaced_custom_object(
        *GATEWAYS[:2], "default", GATEWAYS[2], gateway
    )
    assert made["metadata"]["namespace"] == "default"
    assert (made["apiVersion"], made["kind"]) == (
        "gateway.tailscale.com/v1alpha1",
        "TailscaleGateway",
    )

    listed = await custom.list_cluster_custom_object(*EGRESS)
    assert listed["kind"] == "EgressGroupList"
    assert [i["kind"] for i in listed["items"]] == ["EgressGroup"]  # CR list items keep kind


async def test_a_namespaced_path_of_a_cluster_scoped_resource_is_404(custom: Any) -> None:
    with pytest.raises(ApiException) as caught:
        await custom.list_namespaced_custom_object(*EGRESS[:2], "default", EGRESS[2])
    assert caught.value.status == 404
    assert status_of(caught.value)["message"] == "the server could not find the requested resource"


async def test_generation_counts_spec_changes_only(custom: Any) -> None:
    await custom.create_cluster_custom_object(*EGRESS, egress_group("eg", tailnet="a"))

    labelled = await custom.patch_cluster_custom_object(
        *EGRESS, "eg", {"metadata": {"labels": {"x": "y"}}}, **content_type(MERGE)
    )
    assert labelled["metadata"]["generation"] == 1
    with_status = await custom.patch_cluster_custom_object_status(
        *EGRESS, "eg", {"status": {"phase": "Ready"}}, **content_type(MERGE)
    )
    assert with_status["metadata"]["generation"] == 1
    respecced = await custom.patch_cluster_custom_object(
        *EGRESS, "eg", {"spec": {"tailnet": "b"}}, **content_type(MERGE)
    )
    assert respecced["metadata"]["generation"] == 2


async def test_status_and_main_resource_writes_are_isolated(custom: Any) -> None:
    await custom.create_cluster_custom_object(*EGRESS, egress_group("eg", tailnet="a"))

    # A write to /status changes the status and nothing else, even if it carries more.
    status_write = {"spec": {"tailnet": "ignored"}, "status": {"phase": "Ready"}}
    after_status = await custom.patch_cluster_custom_object_status(
        *EGRESS, "eg", status_write, **content_type(MERGE)
    )
    assert after_status["spec"] == {"tailnet": "a"}
    assert after_status["status"] == {"phase": "Ready"}

    # A write to the main resource changes everything but the status.
    main_write = {"spec": {"tailnet": "b"}, "status": {"phase": "ignored"}}
    after_main = await custom.patch_cluster_custom_object(
        *EGRESS, "eg", main_write, **content_type(MERGE)
    )
    assert after_main["spec"] == {"tailnet": "b"}
    assert after_main["status"] == {"phase": "Ready"}

    # PUT to /status, too, keeps the spec.
    after_main["status"] = {"phase": "Degraded"}
    after_main["spec"] = {"tailnet": "ignored again"}
    replaced = await custom.replace_cluster_custom_object_status(*EGRESS, "eg", after_main)
    assert (replaced["spec"], replaced["status"]) == ({"tailnet": "b"}, {"phase": "Degraded"})


async def test_status_isolation_for_built_in_workloads(kube_emulator: kubeapi.KubeAPI) -> None:
    async with await kube_emulator.api_client() as api_client:
        apps = client.AppsV1Api(api_client)
        labels = {"a": "b"}
        template = client.V1PodTemplateSpec(
            metadata=client.V1ObjectMeta(labels=labels),
            spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="busybox")]),
        )
        deployment = client.V1Deployment(
            metadata=client.V1ObjectMeta(name="web"),
            spec=client.V1DeploymentSpec(
                replicas=1,
                selector=client.V1LabelSelector(match_labels=labels),
                template=template,
            ),
            status=client.V1DeploymentStatus(replicas=7),
        )
        created = await apps.create_namespaced_deployment("default", deployment)
        assert created.to_dict()["status"] is None  # the client's status was dropped
        patched = await apps.patch_namespaced_deployment_status(
            "web", "default", {"status": {"readyReplicas": 1}}
        )
        assert patched.status.ready_replicas == 1
        assert patched.metadata.generation == 1


async def test_a_write_that_changes_nothing_keeps_the_resource_version(custom: Any) -> None:
    created = await custom.create_cluster_custom_object(*EGRESS, egress_group("eg", tailnet="a"))
    same = await custom.patch_cluster_custom_object(
        *EGRESS, "eg", {"spec": {"tailnet": "a"}}, **content_type(MERGE)
    )
    assert same["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]


async def test_merge_patch_null_removes_a_key(custom: Any) -> None:
    await custom.create_cluster_custom_object(*EGRESS, egress_group("eg", tailnet="a", extra=1))
    patched = await custom.patch_cluster_custom_object(
        *EGRESS, "eg", {"spec": {"extra": None}}, **content_type(MERGE)
    )
    assert patched["spec"] == {"tailnet": "a"}


async def test_json_patch_applies_and_a_failed_test_operation_is_422(
    kube_emulator: kubeapi.KubeAPI,
) -> None:
    kube_emulator.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}})
    async with await kube_emulator.api_client() as api_client:
        core = client.CoreV1Api(api_client)
        patch = [
            {"op": "add", "path": "/metadata/labels", "value": {"a/b": "1"}},
            {"op": "add", "path": "/data", "value": {"k": "v"}},
            {"op": "copy", "from": "/data/k", "path": "/data/k2"},
        ]
        patched = await core.patch_namespaced_config_map("cm", "default", patch)  # list: JSON patch
        assert patched.metadata.labels == {"a/b": "1"}
        assert patched.data == {"k": "v", "k2": "v"}

        failing = [{"op": "test", "path": "/data/k", "value": "other"}]
        with pytest.raises(ApiException) as caught:
            await core.patch_namespaced_config_map("cm", "default", failing)
        assert (caught.value.status, status_of(caught.value)["reason"]) == (422, "Invalid")


async def test_custom_resources_refuse_strategic_merge_patch_with_415(custom: Any) -> None:
    await custom.create_cluster_custom_object(*EGRESS, egress_group("eg"))
    with pytest.raises(ApiException) as caught:
        await custom.patch_cluster_custom_object(
            *EGRESS, "eg", {"spec": {}}, **content_type("application/strategic-merge-patch+json")
        )
    assert caught.value.status == 415
    assert status_of(caught.value)["reason"] == "UnsupportedMediaType"


async def test_custom_objects_patch_without_content_type_is_the_real_400(custom: Any) -> None:
    """kubernetes-asyncio sends a dict body to CustomObjectsApi.patch_* as a JSON patch.

    A real server refuses it; so does the emulator, so code must pass
    ``_content_type="application/merge-patch+json"`` (or apply) explicitly.
    """
    await custom.create_cluster_custom_object(*EGRESS, egress_group("eg"))
    with pytest.raises(ApiException) as caught:
        await custom.patch_cluster_custom_object(*EGRESS, "eg", {"spec": {"tailnet": "b"}})
    assert caught.value.status == 400
    assert status_of(caught.value)["message"] == (
        "json: cannot unmarshal object into Go value of type jsonpatch.Patch"
    )


async def test_a_mismatched_kind_is_400(custom: Any) -> None:
    wrong = egress_group("eg")
    wrong["kind"] = "TailscaleTailnet"
    with pytest.raises(ApiException) as caught:
        await custom.create_cluster_custom_object(*EGRESS, wrong)
    assert caught.value.status == 400


async def test_raw_list_shape_of_a_custom_resource(kube_emulator: kubeapi.KubeAPI) -> None:
    kube_emulator.create(egress_group("eg"))
    async with await kube_emulator.api_client() as api_client:
        body = await raw_json(
            await client.CustomObjectsApi(api_client).list_cluster_custom_object(
                *EGRESS, _preload_content=False
            )
        )
    assert body["apiVersion"] == "tailscale.rajsingh.info/v1alpha1"
    assert body["metadata"] == {"resourceVersion": kube_emulator.resource_version}
    # Created by the test's hand, the status is kept as given (as a controller would have).
    assert body["items"][0]["status"] == {"phase": "set by the client, dropped by the server"}
