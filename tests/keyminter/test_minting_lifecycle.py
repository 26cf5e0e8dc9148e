"""Minting, reuse, renewal and revocation against the control-API fake and the emulated
Kubernetes API, both over real HTTP on loopback; time moves on the fake clock only."""

from __future__ import annotations

import datetime

import pytest

from tailwire.services.keyminter import domain
from tailwire.services.keyminter.adapters import secrets
from tailwire.shared import errors
from tailwire.shared.k8s import labels, names
from tailwire.testing import controlapi, kubeapi

from . import helpers
from .conftest import MinterFactory


async def test_mint_writes_an_owned_labelled_secret_whose_key_joins_the_tailnet(
    make_minter: MinterFactory, control_api: controlapi.FakeControlAPI, kube: kubeapi.KubeAPI
) -> None:
    owner = helpers.egress_group(kube)
    request = helpers.key_request(owner, tags=("tag:k8s", "tag:payments"))

    ready = await make_minter().ensure_key(request)

    assert helpers.valid_keys(control_api) == [ready.key_id]
    minted = control_api.keys[ready.key_id]
    assert minted.tags == ("tag:k8s", "tag:payments")
    assert minted.preauthorized
    assert minted.reusable
    assert not minted.ephemeral
    assert minted.description == domain.key_marker(owner.uid)
    assert ready.expires_at == minted.expires
    assert ready.secret_name == names.authkey_secret("payments")
    secret = kube.get("secrets", name=request.secret_name, namespace=request.secret_namespace)
    assert secret is not None
    meta = secret["metadata"]
    assert meta["ownerReferences"][0]["uid"] == owner.uid
    assert meta["ownerReferences"][0]["kind"] == "EgressGroup"
    assert meta["labels"][labels.OWNER_NAME] == "payments"
    assert meta["labels"][labels.OWNER_KIND] == "EgressGroup"
    assert meta["labels"][labels.MANAGED_BY] == labels.MANAGED_BY_VALUE
    assert meta["annotations"][secrets.KEY_ID] == ready.key_id
    # The key in the Secret is a real one: a gateway joins with it, with the owner's tags.
    device = control_api.register_device(
        authkey=helpers.stored_authkey(kube, request), hostname="tailwire-payments-node-a"
    )
    assert device.tags == ("tag:k8s", "tag:payments")


async def test_valid_key_is_reused_without_calling_the_api(
    make_minter: MinterFactory,
    control_api: controlapi.FakeControlAPI,
    kube: kubeapi.KubeAPI,
    clock: controlapi.FakeClock,
) -> None:
    request = helpers.key_request(helpers.egress_group(kube))
    minter = make_minter()
    first = await minter.ensure_key(request)
    before = len(control_api.requests)
    clock.advance(seconds=30 * 24 * 3600)  # a third of the lifetime

    second = await make_minter().ensure_key(request)  # a fresh keyminter, too

    assert second.key_id == first.key_id
    assert len(control_api.requests) == before
    assert helpers.valid_keys(control_api) == [first.key_id]


async def test_changed_tags_mint_a_new_key_and_delete_the_old(
    make_minter: MinterFactory, control_api: controlapi.FakeControlAPI, kube: kubeapi.KubeAPI
) -> None:
    owner = helpers.egress_group(kube)
    minter = make_minter()
    first = await minter.ensure_key(helpers.key_request(owner))
    second = await minter.ensure_key(helpers.key_request(owner, tags=("tag:payments",)))
    assert second.key_id != first.key_id
    assert helpers.valid_keys(control_api) == [second.key_id]


async def test_renewal_at_eighty_percent_replaces_the_key_in_place(
    make_minter: MinterFactory,
    control_api: controlapi.FakeControlAPI,
    kube: kubeapi.KubeAPI,
    clock: controlapi.FakeClock,
) -> None:
    request = helpers.key_request(helpers.egress_group(kube))
    minter = make_minter()
    first = await minter.ensure_key(request)
    old_authkey = helpers.stored_authkey(kube, request)

    clock.advance(seconds=71 * 24 * 3600)
    assert await minter.due_for_renewal() == []
    clock.advance(seconds=2 * 24 * 3600)  # day 73 of 90: past 80 %
    # A restarted keyminter finds what is due from the Secrets alone.
    restarted = make_minter()
    due = await restarted.due_for_renewal()
    assert due == [request]
    renewed = await restarted.ensure_key(due[0])

    assert renewed.key_id != first.key_id
    assert renewed.expires_at == control_api.clock.now() + datetime.timedelta(days=90)
    assert helpers.valid_keys(control_api) == [renewed.key_id]
    assert helpers.stored_authkey(kube, request) != old_authkey
    assert await restarted.due_for_renewal() == []


async def test_revocation_removes_every_per_node_device_and_nothing_else(
    make_minter: MinterFactory, control_api: controlapi.FakeControlAPI, kube: kubeapi.KubeAPI
) -> None:
    owner = helpers.egress_group(kube)
    request = helpers.key_request(owner)
    minter = make_minter()
    await minter.ensure_key(request)
    authkey = helpers.stored_authkey(kube, request)
    for node in ("node-a", "node-b", "node-c"):
        control_api.register_device(
            authkey=authkey, hostname=names.gateway_hostname(group="payments", node=node)
        )
    # Another group with the same tags keeps its device.
    other = helpers.key_request(helpers.egress_group(kube, name="billing"))
    await minter.ensure_key(other)
    control_api.register_device(
        authkey=helpers.stored_authkey(kube, other),
        hostname=names.gateway_hostname(group="billing", node="node-a"),
    )

    revoked = await minter.revoke(helpers.key_request(owner, revoke=True))

    assert revoked.devices_removed == (
        "tailwire-payments-node-a",
        "tailwire-payments-node-b",
        "tailwire-payments-node-c",
    )
    assert sorted(d.hostname for d in control_api.devices.values()) == ["tailwire-billing-node-a"]
    assert len(revoked.key_ids) == 1
    assert control_api.keys[revoked.key_ids[0]].revoked is not None
    assert kube.get("secrets", name=request.secret_name, namespace=helpers.NAMESPACE) is None
    # Revoking again finds nothing left and still succeeds (level-triggered).
    again = await minter.revoke(helpers.key_request(owner, revoke=True))
    assert again.key_ids == ()
    assert again.devices_removed == ()


async def test_revoking_a_group_spares_the_devices_of_a_group_whose_name_extends_it(
    make_minter: MinterFactory, control_api: controlapi.FakeControlAPI, kube: kubeapi.KubeAPI
) -> None:
    # `payments` and `payments-eu` share tag:k8s; `tailwire-payments-eu-node-a` starts with
    # `tailwire-payments-`, so only the renderer's nested prefixes tell the two apart.
    owner = helpers.egress_group(kube)
    eu = helpers.egress_group(kube, name="payments-eu")
    for group_owner in (owner, eu):
        request = helpers.key_request(group_owner)
        await make_minter().ensure_key(request)
        control_api.register_device(
            authkey=helpers.stored_authkey(kube, request),
            hostname=names.gateway_hostname(group=group_owner.name, node="node-a"),
        )

    revoked = await make_minter().revoke(
        helpers.key_request(
            owner, revoke=True, nested_prefixes=(names.hostname_prefix("payments-eu"),)
        )
    )

    assert revoked.devices_removed == ("tailwire-payments-node-a",)
    assert sorted(d.hostname for d in control_api.devices.values()) == [
        "tailwire-payments-eu-node-a"
    ]


async def test_tags_the_client_does_not_own_are_refused_with_the_servers_reason(
    make_minter: MinterFactory, control_api: controlapi.FakeControlAPI, kube: kubeapi.KubeAPI
) -> None:
    request = helpers.key_request(helpers.egress_group(kube), tags=("tag:prod",))
    with pytest.raises(errors.PermanentBackendError, match=r"tag:prod.*not permitted"):
        await make_minter().ensure_key(request)
    assert helpers.valid_keys(control_api) == []
    # The minting claim was taken back: no empty Secret is left behind.
    assert kube.get("secrets", name=request.secret_name, namespace=helpers.NAMESPACE) is None


async def test_revocation_after_a_tag_change_still_finds_devices_with_the_old_tags(
    make_minter: MinterFactory, control_api: controlapi.FakeControlAPI, kube: kubeapi.KubeAPI
) -> None:
    owner = helpers.egress_group(kube)
    minter = make_minter()
    old = helpers.key_request(owner, tags=("tag:payments",))
    await minter.ensure_key(old)
    control_api.register_device(
        authkey=helpers.stored_authkey(kube, old), hostname="tailwire-payments-node-a"
    )
    # The group's tags change; its Secret now holds a tag:k8s key, the device keeps its tags.
    await minter.ensure_key(helpers.key_request(owner, tags=("tag:k8s",)))
    revoked = await minter.revoke(helpers.key_request(owner, tags=("tag:k8s",), revoke=True))
    assert revoked.devices_removed == ("tailwire-payments-node-a",)
    assert control_api.devices == {}


async def test_changed_key_options_mint_a_new_key(
    make_minter: MinterFactory, control_api: controlapi.FakeControlAPI, kube: kubeapi.KubeAPI
) -> None:
    request = helpers.key_request(helpers.egress_group(kube))
    minter = make_minter()
    first = await minter.ensure_key(request)
    ephemeral = await minter.ensure_key(request.model_copy(update={"ephemeral": True}))
    assert ephemeral.key_id != first.key_id
    assert control_api.keys[ephemeral.key_id].ephemeral
    assert helpers.valid_keys(control_api) == [ephemeral.key_id]
