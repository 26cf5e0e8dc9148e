"""Discovery and CRDs at runtime: not installed -> 404, installed -> served, removed -> 404."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client, watch
from kubernetes_asyncio.client.exceptions import ApiException
from kubernetes_asyncio.dynamic import DynamicClient

from tailwire.testing import kubeapi
from tailwire.testing.kubeapi import crds, resources

from .kubeapi_helpers import status_of, take

EGRESS = ("tailscale.rajsingh.info", "v1alpha1", "egressgroups")


def egress_spec() -> kubeapi.ResourceSpec:
    return next(spec for spec in kubeapi.DEFAULT if spec.plural == "egressgroups")


async def test_discovery_lists_groups_versions_and_resources(
    kube_emulator: kubeapi.KubeAPI,
) -> None:
    async with await kube_emulator.api_client() as api_client:
        core = await client.CoreApi(api_client).get_api_versions()
        assert core.versions == ["v1"]
        groups = await client.ApisApi(api_client).get_api_versions()
        names = {g.name: g.preferred_version.group_version for g in groups.groups}
        assert names["gateway.tailscale.com"] == "gateway.tailscale.com/v1alpha1"
        assert names["apps"] == "apps/v1"
        core_resources = await client.CoreV1Api(api_client).get_api_resources()
        pods = {r.name: r for r in core_resources.resources}
        assert pods["pods"].namespaced
        assert pods["pods"].kind == "Pod"
        assert pods["pods/status"].verbs == ["get", "patch", "update"]
        assert not pods["nodes"].namespaced
        version = await client.VersionApi(api_client).get_code()
        assert version.major == "1"


async def test_the_dynamic_client_discovers_a_custom_resource(
    kube_emulator: kubeapi.KubeAPI,
) -> None:
    kube_emulator.create(
        {
            "apiVersion": "tailscale.rajsingh.info/v1alpha1",
            "kind": "EgressGroup",
            "metadata": {"name": "eg"},
            "spec": {},
        }
    )
    async with await kube_emulator.api_client() as api_client:
        dynamic = await DynamicClient(api_client)
        egress = await dynamic.resources.get(
            api_version="tailscale.rajsingh.info/v1alpha1", kind="EgressGroup"
        )
        assert not egress.namespaced
        listed = await dynamic.get(egress)
        assert [item.metadata.name for item in listed.items] == ["eg"]


async def test_a_crd_installed_at_runtime_turns_404_into_service(tmp_path: Path) -> None:
    served = [spec for spec in kubeapi.DEFAULT if spec.plural != "egressgroups"]
    async with (
        kubeapi.serve(served=served, kubeconfig_path=tmp_path / "kubeconfig") as api,
        await api.api_client() as api_client,
    ):
        custom = client.CustomObjectsApi(api_client)
        with pytest.raises(ApiException) as caught:
            await custom.list_cluster_custom_object(*EGRESS)
        assert caught.value.status == 404
        assert (
            status_of(caught.value)["message"] == "the server could not find the requested resource"
        )
        groups = await client.ApisApi(api_client).get_api_versions()
        assert "tailscale.rajsingh.info" not in {g.name for g in groups.groups}

        api.install(egress_spec())

        listed = await custom.list_cluster_custom_object(*EGRESS)
        assert listed["items"] == []
        crd = await client.ApiextensionsV1Api(api_client).read_custom_resource_definition(
            "egressgroups.tailscale.rajsingh.info"
        )
        established = {c.type: c.status for c in crd.status.conditions}
        assert established["Established"] == "True"


async def test_removing_a_crd_deletes_its_objects_ends_watches_and_404s(
    kube_emulator: kubeapi.KubeAPI,
) -> None:
    kube_emulator.create(
        {
            "apiVersion": "tailscale.rajsingh.info/v1alpha1",
            "kind": "EgressGroup",
            "metadata": {"name": "eg"},
        }
    )
    async with await kube_emulator.api_client() as api_client:
        custom = client.CustomObjectsApi(api_client)
        start = kube_emulator.resource_version
        async with watch.Watch() as watcher:
            events = watcher.stream(
                custom.list_cluster_custom_object,
                *EGRESS,
                resource_version=start,
                timeout_seconds=5,
            )
            pending = asyncio.create_task(take(events, 1))
            await kube_emulator.wait_for_watchers("egressgroups")
            await client.ApiextensionsV1Api(api_client).delete_custom_resource_definition(
                crds.name_of(egress_spec())
            )
            [deleted] = await pending
            assert deleted["type"] == "DELETED"
            assert [e async for e in events] == []  # the stream ended with the resource
        with pytest.raises(ApiException) as caught:
            await custom.list_cluster_custom_object(*EGRESS)
        assert caught.value.status == 404


async def test_a_crd_created_through_the_api_serves_its_resource(
    kube_emulator: kubeapi.KubeAPI,
) -> None:
    widget = kubeapi.ResourceSpec(
        group="example.com",
        version="v1",
        plural="widgets",
        kind="Widget",
        namespaced=True,
        status=True,
        custom=True,
    )
    async with await kube_emulator.api_client() as api_client:
        # The client sends a dict as it is; its stubs ask for the model class.
        crd: Any = crds.to_crd(widget)
        await client.ApiextensionsV1Api(api_client).create_custom_resource_definition(crd)
        custom = client.CustomObjectsApi(api_client)
        made = await custom.create_namespaced_custom_object(
            "example.com", "v1", "default", "widgets", {"metadata": {"name": "w"}, "spec": {}}
        )
    assert made["kind"] == "Widget"
    assert kube_emulator.find("widgets.example.com").status
    assert resources.CRD.key in {spec.key for spec in kube_emulator.catalog}
