"""One key per owner, under concurrent requests, racing keyminters and a crash after minting."""

from __future__ import annotations

import asyncio

import pytest

from tailwire.services.keyminter import domain
from tailwire.services.keyminter.adapters import secrets, tailscale_api
from tailwire.shared import errors, settings
from tailwire.shared.events import keys
from tailwire.testing import controlapi, kubeapi

from . import helpers
from .conftest import MinterFactory, http_factory


async def test_concurrent_requests_for_one_owner_mint_one_key(
    make_minter: MinterFactory, control_api: controlapi.FakeControlAPI, kube: kubeapi.KubeAPI
) -> None:
    request = helpers.key_request(helpers.egress_group(kube))
    minter = make_minter()
    results = await asyncio.gather(*(minter.ensure_key(request) for _ in range(10)))
    assert {r.key_id for r in results} == set(helpers.valid_keys(control_api))
    assert len(helpers.valid_keys(control_api)) == 1
    assert len(control_api.requests.matching(method="POST", route="*/keys")) == 1


async def test_two_keyminters_racing_leave_one_valid_key(
    make_minter: MinterFactory, control_api: controlapi.FakeControlAPI, kube: kubeapi.KubeAPI
) -> None:
    # Two replicas (or an old and a new pod during a rollout) get the same request at once:
    # one claims the Secret and mints; the other is told to come back, and then reuses.
    request = helpers.key_request(helpers.egress_group(kube))
    a, b = make_minter(), make_minter()
    for _ in range(5):
        results = await asyncio.gather(
            a.ensure_key(request), b.ensure_key(request), return_exceptions=True
        )
        ready = [r for r in results if isinstance(r, keys.KeyReady)]
        deferred = [r for r in results if not isinstance(r, keys.KeyReady)]
        assert ready, results
        for failure in deferred:
            assert isinstance(failure, errors.TransientBackendError), failure
            assert "another keyminter is minting" in str(failure)
        assert helpers.valid_keys(control_api) == [ready[0].key_id]
        again = await b.ensure_key(request)
        assert again.key_id == ready[0].key_id
        # Next round starts from nothing again.
        await a.revoke(helpers.key_request(request.owner, revoke=True))


async def test_claim_of_a_keyminter_that_died_is_taken_over_after_the_grace(
    make_minter: MinterFactory,
    control_api: controlapi.FakeControlAPI,
    kube: kubeapi.KubeAPI,
    clock: controlapi.FakeClock,
    tailscale_settings: settings.TailscaleSettings,
) -> None:
    owner = helpers.egress_group(kube)
    request = helpers.key_request(owner)
    # A keyminter claimed the Secret, minted, and died before writing the key.
    kube.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": request.secret_name,
                "namespace": helpers.NAMESPACE,
                "annotations": {
                    secrets.MINTING_BY: "keyminter-0-dead",
                    secrets.MINTING_SINCE: clock.now().isoformat(),
                },
            },
        }
    )
    orphan = await _mint_as_crashed_keyminter(control_api, tailscale_settings, owner_uid=owner.uid)
    restarted = make_minter()
    with pytest.raises(errors.TransientBackendError, match="another keyminter") as caught:
        await restarted.ensure_key(request)
    assert caught.value.retry_after is not None
    assert caught.value.retry_after > 100

    clock.advance(seconds=caught.value.retry_after)
    ready = await restarted.ensure_key(request)

    assert helpers.valid_keys(control_api) == [ready.key_id]
    assert control_api.keys[orphan].revoked is not None
    secret = kube.get("secrets", name=request.secret_name, namespace=helpers.NAMESPACE)
    assert secret is not None
    assert secrets.MINTING_BY not in secret["metadata"]["annotations"]


async def _mint_as_crashed_keyminter(
    control_api: controlapi.FakeControlAPI,
    tailscale_settings: settings.TailscaleSettings,
    *,
    owner_uid: str,
) -> str:
    """A key with the owner's marker that no Secret names: what a crash after minting leaves."""
    assert tailscale_settings.tailscale_oauth_client_id is not None
    assert tailscale_settings.tailscale_oauth_client_secret is not None
    async with http_factory(control_api.url) as http:
        crashed = tailscale_api.TailscaleClient(
            http,
            tailnet="-",
            client_id=tailscale_settings.tailscale_oauth_client_id,
            client_secret=tailscale_settings.tailscale_oauth_client_secret,
            clock=control_api.clock,
        )
        minted = await crashed.mint_key(
            tags=("tag:k8s",),
            reusable=True,
            ephemeral=False,
            preauthorized=True,
            expiry_seconds=3600,
            description=domain.key_marker(owner_uid),
        )
    return minted.key_id


async def test_key_minted_before_a_crash_is_found_and_deleted_after_restart(
    make_minter: MinterFactory,
    control_api: controlapi.FakeControlAPI,
    kube: kubeapi.KubeAPI,
    tailscale_settings: settings.TailscaleSettings,
) -> None:
    owner = helpers.egress_group(kube)
    request = helpers.key_request(owner)
    # No claim survived (or it was our own), but a key with the owner's marker did.
    orphan = await _mint_as_crashed_keyminter(control_api, tailscale_settings, owner_uid=owner.uid)

    ready = await make_minter().ensure_key(request)

    assert ready.key_id != orphan
    assert helpers.valid_keys(control_api) == [ready.key_id]
    assert control_api.keys[orphan].revoked is not None


async def test_failed_secret_write_deletes_the_key_it_minted(
    make_minter: MinterFactory, control_api: controlapi.FakeControlAPI, kube: kubeapi.KubeAPI
) -> None:
    owner = helpers.egress_group(kube)
    request = helpers.key_request(owner).model_copy(update={"secret_namespace": "missing"})
    minter = make_minter()
    with pytest.raises(errors.NotFound, match="missing"):
        await minter.ensure_key(request)
    assert helpers.valid_keys(control_api) == []
    # Once the namespace exists the same request succeeds with exactly one key.
    kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "missing"}})
    ready = await minter.ensure_key(request)
    assert helpers.valid_keys(control_api) == [ready.key_id]
