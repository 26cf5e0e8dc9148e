"""Server-side apply: create if absent, merge, managedFields, removal, conflicts and force.

Contract tests (``kube_api``) except the one that reads the emulator's exact ``fieldsV1``.
"""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from tailwire.testing import kubeapi

from .kubeapi_helpers import APPLY, content_type, status_of


def manifest(**data: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "applied", "labels": {"owner": "tests"}},
        "data": data,
    }


async def apply(
    core: Any, namespace: str, body: dict[str, Any], *, manager: str, force: bool = False
) -> tuple[Any, int]:
    obj, code, _ = await core.patch_namespaced_config_map_with_http_info(
        "applied", namespace, body, field_manager=manager, force=force, **content_type(APPLY)
    )
    return obj, code


def managers(obj: Any) -> set[tuple[str, str]]:
    return {(m.manager, m.operation) for m in obj.metadata.managed_fields}


async def test_apply_creates_an_absent_object_with_201(
    kube_client: client.ApiClient, kube_namespace: str
) -> None:
    core = client.CoreV1Api(kube_client)
    created, code = await apply(core, kube_namespace, manifest(a="1"), manager="tailwire")
    assert code == 201
    assert created.data == {"a": "1"}
    assert managers(created) == {("tailwire", "Apply")}


async def test_reapply_merges_and_removes_what_the_manager_no_longer_applies(
    kube_client: client.ApiClient, kube_namespace: str
) -> None:
    core = client.CoreV1Api(kube_client)
    first, _ = await apply(core, kube_namespace, manifest(a="1", b="2"), manager="tailwire")
    # Another writer adds a key with an ordinary patch: apply must leave it alone.
    await core.patch_namespaced_config_map("applied", kube_namespace, {"data": {"other": "x"}})

    second, code = await apply(core, kube_namespace, manifest(a="changed"), manager="tailwire")
    assert code == 200
    assert second.data == {"a": "changed", "other": "x"}  # b: no longer applied, owned by none
    assert int(second.metadata.resource_version) > int(first.metadata.resource_version)
    assert ("tailwire", "Apply") in managers(second)
    assert ("OpenAPI-Generator", "Update") in managers(second)


async def test_apply_over_another_managers_field_conflicts_unless_forced(
    kube_client: client.ApiClient, kube_namespace: str
) -> None:
    core = client.CoreV1Api(kube_client)
    await apply(core, kube_namespace, manifest(a="1"), manager="first")

    with pytest.raises(ApiException) as caught:
        await apply(core, kube_namespace, manifest(a="2"), manager="second")
    assert caught.value.status == 409
    status = status_of(caught.value)
    assert status["reason"] == "Conflict"
    assert status["message"] == 'Apply failed with 1 conflict: conflict with "first": .data.a'
    assert status["details"]["causes"] == [
        {"reason": "FieldManagerConflict", "message": 'conflict with "first"', "field": ".data.a"}
    ]

    forced, _ = await apply(core, kube_namespace, manifest(a="2"), manager="second", force=True)
    assert forced.data == {"a": "2"}


async def test_applying_the_same_value_shares_ownership_without_conflict(
    kube_client: client.ApiClient, kube_namespace: str
) -> None:
    core = client.CoreV1Api(kube_client)
    await apply(core, kube_namespace, manifest(a="1"), manager="first")
    shared, _ = await apply(core, kube_namespace, manifest(a="1"), manager="second")
    assert {("first", "Apply"), ("second", "Apply")} <= managers(shared)


async def test_apply_without_a_field_manager_is_400(
    kube_client: client.ApiClient, kube_namespace: str
) -> None:
    with pytest.raises(ApiException) as caught:
        await client.CoreV1Api(kube_client).patch_namespaced_config_map(
            "applied", kube_namespace, manifest(a="1"), **content_type(APPLY)
        )
    assert caught.value.status == 400


async def test_managed_fields_record_the_applied_fields(kube_emulator: kubeapi.KubeAPI) -> None:
    async with await kube_emulator.api_client() as api_client:
        created, _ = await apply(
            client.CoreV1Api(api_client), "default", manifest(a="1"), manager="tailwire"
        )
    [entry] = created.metadata.managed_fields
    assert entry.api_version == "v1"
    assert entry.fields_type == "FieldsV1"
    assert entry.fields_v1 == {
        "f:data": {"f:a": {}},
        "f:metadata": {"f:labels": {"f:owner": {}}},
    }
    assert entry.time is not None


async def test_apply_of_a_custom_resource_through_custom_objects_api(
    kube_emulator: kubeapi.KubeAPI,
) -> None:
    group = ("gateway.tailscale.com", "v1alpha1", "default", "tailscalegateways")
    body = {
        "apiVersion": "gateway.tailscale.com/v1alpha1",
        "kind": "TailscaleGateway",
        "metadata": {"name": "gw"},
        "spec": {"tailnet": "example", "replicas": 2},
    }
    async with await kube_emulator.api_client() as api_client:
        custom = client.CustomObjectsApi(api_client)
        await custom.patch_namespaced_custom_object(
            *group, "gw", body, field_manager="renderer", **content_type(APPLY)
        )
        body["spec"] = {"tailnet": "example"}
        updated = await custom.patch_namespaced_custom_object(
            *group, "gw", body, field_manager="renderer", **content_type(APPLY)
        )
    assert updated["spec"] == {"tailnet": "example"}
    assert updated["metadata"]["generation"] == 2
    assert [m["manager"] for m in updated["metadata"]["managedFields"]] == ["renderer"]
