"""Contract tests of create, get, list, selectors and PUT over kubernetes-asyncio.

They use ``kube_api``, so they hold against K3s too (``TAILWIRE_TEST_K3S=1``):
whatever the emulator answers here, a real API server answers the same.
"""

from __future__ import annotations

import uuid

import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from .kubeapi_helpers import config_map, pod, raw_json, status_of


async def test_create_answers_201_with_the_server_owned_fields(
    kube_client: client.ApiClient, kube_namespace: str
) -> None:
    core = client.CoreV1Api(kube_client)
    created, code, _ = await core.create_namespaced_config_map_with_http_info(
        kube_namespace, config_map("cm", data={"k": "v"})
    )
    assert code == 201
    meta = created.metadata
    assert meta.namespace == kube_namespace  # filled from the URL
    assert uuid.UUID(meta.uid)
    assert meta.resource_version.isdigit()
    assert meta.creation_timestamp is not None
    assert meta.to_dict()["generation"] is None  # ConfigMaps keep no generation
    assert [m.manager for m in meta.managed_fields] == ["OpenAPI-Generator"]


async def test_every_write_takes_a_higher_cluster_wide_resource_version(
    kube_client: client.ApiClient, kube_namespace: str
) -> None:
    core = client.CoreV1Api(kube_client)
    first = await core.create_namespaced_config_map(kube_namespace, config_map("a"))
    secret = client.V1Secret(metadata=client.V1ObjectMeta(name="b"))
    second = await core.create_namespaced_secret(kube_namespace, secret)
    patched = await core.patch_namespaced_config_map(
        "a", kube_namespace, {"data": {"k": "changed"}}
    )
    versions = [int(o.metadata.resource_version) for o in (first, second, patched)]
    assert versions == sorted(versions)
    assert len(set(versions)) == 3


async def test_create_of_an_existing_name_is_409_already_exists(
    kube_client: client.ApiClient, kube_namespace: str
) -> None:
    core = client.CoreV1Api(kube_client)
    await core.create_namespaced_config_map(kube_namespace, config_map("cm"))
    with pytest.raises(ApiException) as caught:
        await core.create_namespaced_config_map(kube_namespace, config_map("cm"))
    assert caught.value.status == 409
    assert status_of(caught.value) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'configmaps "cm" already exists',
        "reason": "AlreadyExists",
        "details": {"name": "cm", "kind": "configmaps"},
        "code": 409,
    }


async def test_get_of_a_missing_object_is_404_not_found(
    kube_client: client.ApiClient, kube_namespace: str
) -> None:
    with pytest.raises(ApiException) as caught:
        await client.CoreV1Api(kube_client).read_namespaced_config_map("nope", kube_namespace)
    assert caught.value.status == 404
    status = status_of(caught.value)
    assert (status["reason"], status["code"]) == ("NotFound", 404)
    assert status["message"] == 'configmaps "nope" not found'
    assert status["details"] == {"name": "nope", "kind": "configmaps"}


async def test_create_in_a_missing_namespace_is_404(kube_client: client.ApiClient) -> None:
    with pytest.raises(ApiException) as caught:
        await client.CoreV1Api(kube_client).create_namespaced_config_map(
            "no-such-namespace", config_map("cm")
        )
    assert caught.value.status == 404
    assert status_of(caught.value)["message"] == 'namespaces "no-such-namespace" not found'


async def test_list_is_a_kind_list_with_a_resource_version_and_bare_items(
    kube_client: client.ApiClient, kube_namespace: str
) -> None:
    core = client.CoreV1Api(kube_client)
    await core.create_namespaced_config_map(kube_namespace, config_map("cm"))
    body = await raw_json(
        await core.list_namespaced_config_map(kube_namespace, _preload_content=False)
    )
    assert (body["kind"], body["apiVersion"]) == ("ConfigMapList", "v1")
    assert body["metadata"]["resourceVersion"].isdigit()
    names = [item["metadata"]["name"] for item in body["items"]]
    assert "cm" in names
    # Items of built-in lists carry no apiVersion/kind; client code must not rely on them.
    assert all("kind" not in item and "apiVersion" not in item for item in body["items"])


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("app=web", ["web-1", "web-2"]),
        ("app==web", ["web-1", "web-2"]),
        ("app!=web", ["db", "plain"]),  # != also matches objects without the label
        ("app in (web,db)", ["db", "web-1", "web-2"]),
        ("app notin (web)", ["db", "plain"]),
        ("tier", ["web-2"]),
        ("!tier", ["db", "plain", "web-1"]),
        ("app=web,!tier", ["web-1"]),
        ("app in (web, db), tier notin (front)", ["db", "web-1"]),
    ],
)
async def test_label_selectors_follow_the_server_grammar(
    kube_client: client.ApiClient, kube_namespace: str, selector: str, expected: list[str]
) -> None:
    core = client.CoreV1Api(kube_client)
    for name, labels in {
        "web-1": {"app": "web"},
        "web-2": {"app": "web", "tier": "front"},
        "db": {"app": "db"},
        "plain": {},
    }.items():
        await core.create_namespaced_config_map(kube_namespace, config_map(name, labels=labels))
    listed = await core.list_namespaced_config_map(kube_namespace, label_selector=selector)
    names = sorted(i.metadata.name for i in listed.items if i.metadata.name != "kube-root-ca.crt")
    assert names == expected


async def test_field_selectors_on_name_namespace_and_pod_node(
    kube_client: client.ApiClient, kube_namespace: str
) -> None:
    core = client.CoreV1Api(kube_client)
    for name, node in (("on-a", "node-a"), ("on-b", "node-b")):
        await core.create_namespaced_pod(kube_namespace, pod(name, node=node))

    by_node = await core.list_pod_for_all_namespaces(field_selector="spec.nodeName=node-a")
    assert [p.metadata.name for p in by_node.items] == ["on-a"]
    by_name = await core.list_namespaced_pod(kube_namespace, field_selector="metadata.name!=on-a")
    assert [p.metadata.name for p in by_name.items] == ["on-b"]
    by_namespace = await core.list_pod_for_all_namespaces(
        field_selector=f"metadata.namespace={kube_namespace},spec.nodeName!=node-a"
    )
    assert [p.metadata.name for p in by_namespace.items] == ["on-b"]


async def test_an_unsupported_field_selector_is_400(
    kube_client: client.ApiClient, kube_namespace: str
) -> None:
    with pytest.raises(ApiException) as caught:
        await client.CoreV1Api(kube_client).list_namespaced_config_map(
            kube_namespace, field_selector="data.k=v"
        )
    assert caught.value.status == 400
    assert status_of(caught.value)["reason"] == "BadRequest"


async def test_list_pages_with_limit_and_continue(
    kube_client: client.ApiClient, kube_namespace: str
) -> None:
    core = client.CoreV1Api(kube_client)
    for index in range(5):
        labels = {"page": "yes"}
        await core.create_namespaced_config_map(
            kube_namespace, config_map(f"cm-{index}", labels=labels)
        )
    page = await core.list_namespaced_config_map(kube_namespace, label_selector="page=yes", limit=2)
    names = [i.metadata.name for i in page.items]
    while page.metadata._continue:
        assert page.metadata.remaining_item_count > 0
        page = await core.list_namespaced_config_map(
            kube_namespace, label_selector="page=yes", limit=2, _continue=page.metadata._continue
        )
        names += [i.metadata.name for i in page.items]
    assert names == [f"cm-{i}" for i in range(5)]


async def test_generate_name_makes_a_unique_name(
    kube_client: client.ApiClient, kube_namespace: str
) -> None:
    core = client.CoreV1Api(kube_client)
    body = config_map(generate_name="cm-")
    first = await core.create_namespaced_config_map(kube_namespace, body)
    second = await core.create_namespaced_config_map(kube_namespace, body)
    assert first.metadata.name.startswith("cm-")
    assert len(first.metadata.name) == len("cm-") + 5
    assert first.metadata.name != second.metadata.name


async def test_put_with_a_stale_resource_version_is_409_conflict(
    kube_client: client.ApiClient, kube_namespace: str
) -> None:
    core = client.CoreV1Api(kube_client)
    stale = await core.create_namespaced_config_map(kube_namespace, config_map("cm"))
    await core.patch_namespaced_config_map("cm", kube_namespace, {"data": {"k": "newer"}})
    stale.data = {"k": "lost update"}
    with pytest.raises(ApiException) as caught:
        await core.replace_namespaced_config_map("cm", kube_namespace, stale)
    assert caught.value.status == 409
    status = status_of(caught.value)
    assert status["reason"] == "Conflict"
    assert status["message"] == (
        'Operation cannot be fulfilled on configmaps "cm": the object has been modified;'
        " please apply your changes to the latest version and try again"
    )
    assert status["details"] == {"name": "cm", "kind": "configmaps"}


async def test_put_with_the_current_resource_version_replaces(
    kube_client: client.ApiClient, kube_namespace: str
) -> None:
    core = client.CoreV1Api(kube_client)
    current = await core.create_namespaced_config_map(kube_namespace, config_map("cm"))
    current.data = {"only": "this"}
    replaced = await core.replace_namespaced_config_map("cm", kube_namespace, current)
    assert replaced.data == {"only": "this"}
    assert int(replaced.metadata.resource_version) > int(current.metadata.resource_version)
    assert replaced.metadata.uid == current.metadata.uid


async def test_the_server_defaults_namespace_and_pod_phases(
    kube_client: client.ApiClient, kube_namespace: str
) -> None:
    core = client.CoreV1Api(kube_client)
    namespace = await core.read_namespace(kube_namespace)
    assert namespace.status.phase == "Active"
    assert namespace.spec.finalizers == ["kubernetes"]
    created = await core.create_namespaced_pod(kube_namespace, pod("p", node="nowhere"))
    assert created.status.phase == "Pending"


async def test_creating_with_a_resource_version_is_the_real_500(
    kube_client: client.ApiClient, kube_namespace: str
) -> None:
    core = client.CoreV1Api(kube_client)
    read_back = await core.create_namespaced_config_map(kube_namespace, config_map("cm"))
    read_back.metadata.name = "copy"
    with pytest.raises(ApiException) as caught:
        await core.create_namespaced_config_map(kube_namespace, read_back)
    assert caught.value.status == 500
    assert status_of(caught.value)["message"] == (
        "Internal error occurred: resourceVersion should not be set on objects to be created"
    )
