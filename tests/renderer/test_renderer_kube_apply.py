"""The renderer against the emulated Kubernetes API: server-side apply with owner references,
pruning only what tailwire manages, status with field-naming messages, the finalizer."""

from __future__ import annotations

import datetime
from typing import Any

from faststream.nats import NatsBroker

from tailwire.shared import bus, settings, subjects
from tailwire.shared.events import base, keys, nodes
from tailwire.shared.k8s import labels
from tailwire.testing import kubeapi
from tests.fixtures.kube import kube_emulator  # noqa: F401  (not yet in the root conftest)
from tests.renderer import helpers

NS = helpers.OPTS.gateway_namespace


def _group_object(api: kubeapi.KubeAPI, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return api.create(
        {
            "apiVersion": "tailscale.rajsingh.info/v1alpha1",
            "kind": "EgressGroup",
            "metadata": {"name": name},
            "spec": spec,
        }
    )


def _snapshot(obj: dict[str, Any], **meta: Any) -> Any:
    return helpers.group(
        obj["metadata"]["name"],
        obj["spec"],
        uid=obj["metadata"]["uid"],
        generation=obj["metadata"].get("generation") or 1,
        **meta,
    )


async def _publish(broker: NatsBroker, event: base.Event, subject: str) -> None:
    await bus.publish(broker, event, subject=subject)


async def test_valid_group_is_applied_and_invalid_one_gets_ready_false_with_the_field(
    bus_settings: settings.BusSettings,
    kube_emulator: kubeapi.KubeAPI,  # noqa: F811
) -> None:
    api = kube_emulator
    api.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    api.create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-a"}})
    peers = _group_object(api, "peers", helpers.PEERS_SPEC)
    bad = _group_object(api, "bad", {"selector": {}, "mode": "subnet", "routes": ["10.0.0.1/8"]})
    managed = {labels.MANAGED_BY: "tailwire", labels.COMPONENT: "egress-gateway"}
    stale = {"apiVersion": "v1", "kind": "ConfigMap", "data": {}}
    api.create(
        {**stale, "metadata": {"name": "tailwire-gw-gone", "namespace": NS, "labels": managed}}
    )
    foreign = {labels.COMPONENT: "egress-gateway"}
    api.create({**stale, "metadata": {"name": "someone-elses", "namespace": NS, "labels": foreign}})
    async with helpers.producer(bus_settings) as broker:
        await helpers.publish(
            broker,
            helpers.namespace("payments"),
            helpers.node("node-a"),
            _snapshot(peers),
            _snapshot(bad),
            helpers.pod("api-0", node_name="node-a"),
        )
        async with helpers.running_renderer(
            bus_settings, kube_client_factory=api.api_client
        ) as renderer:
            await helpers.settled(renderer, lambda: len(renderer.published.summaries) == 2)
            assert renderer.sync is not None
            await renderer.sync.synced.wait()
            assert set(renderer.published.key_requests) == {"peers"}
            assert all(
                g.group == "peers" for p in renderer.published.plans.values() for g in p.gateways
            )
    daemon_set = api.get("daemonsets", name="tailwire-gw-peers", namespace=NS)
    config_map = api.get("configmaps", name="tailwire-gw-peers", namespace=NS)
    assert daemon_set is not None
    assert config_map is not None
    assert daemon_set["metadata"]["ownerReferences"][0]["uid"] == peers["metadata"]["uid"]
    assert {m["manager"] for m in daemon_set["metadata"]["managedFields"]} == {"tailwire"}
    assert set(config_map["data"]) == {"node-a.json"}
    # Nothing for the invalid group; the stale managed object pruned, the foreign one kept.
    assert api.get("daemonsets", name="tailwire-gw-bad", namespace=NS) is None
    assert api.get("configmaps", name="tailwire-gw-gone", namespace=NS) is None
    assert api.get("configmaps", name="someone-elses", namespace=NS) is not None
    # The node that hosts members is labelled for the gateway's nodeSelector.
    labelled = api.get("nodes", name="node-a") or {}
    assert labelled["metadata"]["labels"] == {"egress.tailwire.dev/peers": "true"}
    bad_now = api.get("egressgroups", name="bad")
    assert bad_now is not None
    ready = {c["type"]: c for c in bad_now["status"]["conditions"]}["Ready"]
    assert ready["status"] == "False"
    assert ready["reason"] == "InvalidSpec"
    assert ready["message"].startswith("spec.routes[0]:")
    assert "host bits" in ready["message"]
    assert labels.FINALIZER not in (bad_now["metadata"].get("finalizers") or [])
    peers_now = api.get("egressgroups", name="peers")
    assert peers_now is not None
    assert peers_now["metadata"]["finalizers"] == [labels.FINALIZER]
    assert peers_now["status"]["matchedPods"] == 1
    assert peers_now["status"]["gatewayNodes"] == ["node-a"]


async def test_status_turns_ready_from_key_and_ack_and_deletion_waits_for_cleanup(
    bus_settings: settings.BusSettings,
    kube_emulator: kubeapi.KubeAPI,  # noqa: F811
) -> None:
    api = kube_emulator
    api.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    peers = _group_object(api, "peers", helpers.PEERS_SPEC)
    owner = base.OwnerRef(
        api_version="tailscale.rajsingh.info/v1alpha1",
        kind="EgressGroup",
        name="peers",
        uid=peers["metadata"]["uid"],
    )
    ref = subjects.ObjectRef(kind=subjects.Kind.EGRESSGROUP, namespace=None, name="peers")
    async with helpers.producer(bus_settings) as broker:
        await helpers.publish(
            broker,
            helpers.node("node-a"),
            _snapshot(peers),
            helpers.pod("api-0", node_name="node-a"),
        )
        async with helpers.running_renderer(
            bus_settings, kube_client_factory=api.api_client
        ) as renderer:
            await helpers.settled(renderer, lambda: "node-a" in renderer.published.plans)
            ready_event = keys.KeyReady(
                owner=owner,
                tailnet="-",
                secret_name="tailwire-gw-peers-authkey",
                secret_namespace=NS,
                key_id="k123",
                expires_at=datetime.datetime(2027, 1, 1, tzinfo=datetime.UTC),
                tags=("tag:k8s",),
            )
            await _publish(broker, ready_event, subjects.keys_ready(ref))
            generation = renderer.published.plans["node-a"].generation
            ack = nodes.NodeAck(node="node-a", generation=generation)  # type: ignore[arg-type]
            await _publish(broker, ack, subjects.node_ack("node-a"))
            subject = subjects.status(ref)
            await helpers.settled(renderer, lambda: renderer.published.summaries[subject].ready)
            summary = renderer.published.summaries[subject]
            assert summary.details["gatewayHostnames"] == ["tailwire-peers-node-a"]

            # Deletion: the plan drops the group, a revoking key request goes out, and the
            # finalizer stays until the key is revoked and the node acked the new plan.
            snapshot = _snapshot(
                api.get("egressgroups", name="peers") or {},
                rv="deleting",
                deletion_timestamp=datetime.datetime(2026, 11, 22, tzinfo=datetime.UTC),
                finalizers=(labels.FINALIZER,),
            )
            await helpers.publish(broker, snapshot)
            await helpers.settled(renderer, lambda: renderer.published.key_requests["peers"].revoke)
            assert renderer.published.plans["node-a"].members == ()
            assert renderer.sync is not None
            await renderer.sync.synced.wait()
            assert (api.get("egressgroups", name="peers") or {})["metadata"]["finalizers"] == [
                labels.FINALIZER
            ]
            await _publish(
                broker, keys.KeyRevoked(owner=owner, tailnet="-"), subjects.keys_revoked(ref)
            )
            new_generation = renderer.published.plans["node-a"].generation
            ack = nodes.NodeAck(node="node-a", generation=new_generation)  # type: ignore[arg-type]
            await _publish(broker, ack, subjects.node_ack("node-a"))
            await helpers.settled(
                renderer,
                lambda: (
                    renderer.acks["node-a"].generation == new_generation
                    and "peers" in renderer.key_events
                    and isinstance(renderer.key_events["peers"], keys.KeyRevoked)
                ),
            )
            await renderer.sync.synced.wait()
    assert (api.get("egressgroups", name="peers") or {})["metadata"].get("finalizers") in (None, [])
