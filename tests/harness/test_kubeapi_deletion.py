"""Deletion: finalizers hold an object until they are gone; what DELETE answers; preconditions."""

from __future__ import annotations

import pytest
from kubernetes_asyncio import client, watch
from kubernetes_asyncio.client.exceptions import ApiException

from tailwire.testing import kubeapi

from .kubeapi_helpers import config_map, raw_json, status_of, take

FINALIZER = "tailwire.io/test"


def held(name: str) -> client.V1ConfigMap:
    return config_map(name, finalizers=[FINALIZER], data={"k": "v"})


async def test_finalizers_hold_a_deleted_object_until_removed(
    kube_client: client.ApiClient, kube_namespace: str
) -> None:
    core = client.CoreV1Api(kube_client)
    created = await core.create_namespaced_config_map(kube_namespace, held("cm"))

    async with watch.Watch() as watcher:
        events = watcher.stream(
            core.list_namespaced_config_map,
            kube_namespace,
            field_selector="metadata.name=cm",
            resource_version=created.metadata.resource_version,
        )
        answer = await raw_json(
            await core.delete_namespaced_config_map("cm", kube_namespace, _preload_content=False)
        )
        # While held, DELETE answers with the object itself, now carrying a deletionTimestamp.
        assert answer["metadata"]["deletionTimestamp"]
        terminating = await core.read_namespaced_config_map("cm", kube_namespace)
        assert terminating.metadata.deletion_timestamp is not None
        assert terminating.metadata.finalizers == [FINALIZER]

        [marked] = await take(events, 1)
        assert marked["type"] == "MODIFIED"
        assert marked["raw_object"]["metadata"]["deletionTimestamp"]

        await core.patch_namespaced_config_map(
            "cm", kube_namespace, {"metadata": {"finalizers": None}}
        )
        released = await take(events, 2)
        assert [e["type"] for e in released] == ["MODIFIED", "DELETED"]

    with pytest.raises(ApiException) as caught:
        await core.read_namespaced_config_map("cm", kube_namespace)
    assert caught.value.status == 404


async def test_no_new_finalizers_on_an_object_being_deleted(
    kube_client: client.ApiClient, kube_namespace: str
) -> None:
    core = client.CoreV1Api(kube_client)
    await core.create_namespaced_config_map(kube_namespace, held("cm"))
    await core.delete_namespaced_config_map("cm", kube_namespace)
    with pytest.raises(ApiException) as caught:
        await core.patch_namespaced_config_map(
            "cm", kube_namespace, {"metadata": {"finalizers": [FINALIZER, "another/one"]}}
        )
    assert caught.value.status == 422
    await core.patch_namespaced_config_map("cm", kube_namespace, {"metadata": {"finalizers": []}})


async def test_delete_answers_a_status_for_config_maps(
    kube_client: client.ApiClient, kube_namespace: str
) -> None:
    core = client.CoreV1Api(kube_client)
    created = await core.create_namespaced_config_map(kube_namespace, config_map("cm"))
    answer = await raw_json(
        await core.delete_namespaced_config_map("cm", kube_namespace, _preload_content=False)
    )
    assert answer["kind"] == "Status"
    assert answer["status"] == "Success"
    assert answer["details"] == {"name": "cm", "kind": "configmaps", "uid": created.metadata.uid}


async def test_delete_with_a_stale_precondition_is_409(
    kube_client: client.ApiClient, kube_namespace: str
) -> None:
    core = client.CoreV1Api(kube_client)
    created = await core.create_namespaced_config_map(kube_namespace, config_map("cm"))
    await core.patch_namespaced_config_map("cm", kube_namespace, {"data": {"k": "v"}})
    stale = client.V1Preconditions(resource_version=created.metadata.resource_version)
    options = client.V1DeleteOptions(preconditions=stale)
    with pytest.raises(ApiException) as caught:
        await core.delete_namespaced_config_map("cm", kube_namespace, body=options)
    assert caught.value.status == 409
    assert status_of(caught.value)["reason"] == "Conflict"


async def test_delete_collection_by_label(
    kube_client: client.ApiClient, kube_namespace: str
) -> None:
    core = client.CoreV1Api(kube_client)
    for name, labels in (("a", {"drop": "yes"}), ("b", {"drop": "yes"}), ("c", {})):
        await core.create_namespaced_config_map(kube_namespace, config_map(name, labels=labels))
    await core.delete_collection_namespaced_config_map(kube_namespace, label_selector="drop=yes")
    left = await core.list_namespaced_config_map(kube_namespace, label_selector="!drop")
    assert "c" in [i.metadata.name for i in left.items]
    dropped = await core.list_namespaced_config_map(kube_namespace, label_selector="drop")
    assert dropped.items == []


async def test_deleting_a_custom_resource_answers_the_object_and_bumps_generation(
    kube_emulator: kubeapi.KubeAPI,
) -> None:
    group = ("tailscale.rajsingh.info", "v1alpha1", "egressgroups")
    body = {"metadata": {"name": "eg", "finalizers": [FINALIZER]}, "spec": {"tailnet": "t"}}
    async with await kube_emulator.api_client() as api_client:
        custom = client.CustomObjectsApi(api_client)
        await custom.create_cluster_custom_object(*group, body)
        answer = await custom.delete_cluster_custom_object(*group, "eg")
    assert answer["kind"] == "EgressGroup"
    assert answer["metadata"]["generation"] == 2  # deletion starting is a spec-level change
    assert kube_emulator.delete("egressgroups", name="eg", force=True) is None
    assert kube_emulator.get("egressgroups", name="eg") is None
