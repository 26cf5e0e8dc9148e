"""Tailnets named by a `TailscaleTailnet` resource: credentials from its Secret, Tailscale or
Headscale chosen per tailnet, and a clear error when something is missing."""

from __future__ import annotations

import pytest

from tailwire.shared import errors
from tailwire.testing import controlapi, kubeapi

from . import helpers
from .conftest import MinterFactory


async def test_headscale_tailnet_mints_a_tagged_preauth_key_and_revokes_its_nodes(
    make_minter: MinterFactory, control_api: controlapi.FakeControlAPI, kube: kubeapi.KubeAPI
) -> None:
    api_key = control_api.add_headscale_api_key()
    helpers.tailnet_resource(
        kube,
        name="home",
        spec={"backend": "headscale", "apiURL": control_api.url, "headscale": {"user": "ops"}},
        secret={"api_key": api_key},
    )
    owner = helpers.egress_group(kube)
    request = helpers.key_request(owner, tailnet="home")
    minter = make_minter()

    ready = await minter.ensure_key(request)

    assert ready.tailnet == "home"
    key = control_api.headscale.keys[int(ready.key_id)]
    assert key.acl_tags == ("tag:k8s",)
    assert key.reusable
    node = control_api.register_node(
        authkey=helpers.stored_authkey(kube, request), hostname="tailwire-payments-node-a"
    )
    assert node.tags == ("tag:k8s",)
    assert (await minter.ensure_key(request)).key_id == ready.key_id  # reused

    revoked = await minter.revoke(helpers.key_request(owner, tailnet="home", revoke=True))
    assert revoked.devices_removed == ("tailwire-payments-node-a",)
    assert control_api.headscale.nodes == {}
    assert key.expiration <= control_api.clock.now()


async def test_named_tailscale_tailnet_uses_its_own_oauth_client(
    make_minter: MinterFactory, control_api: controlapi.FakeControlAPI, kube: kubeapi.KubeAPI
) -> None:
    oauth = control_api.add_oauth_client(scopes=helpers.SCOPES, tags=["tag:lab"])
    helpers.tailnet_resource(
        kube,
        name="lab",
        spec={"tailnet": "example.com", "apiURL": control_api.url, "tags": ["tag:lab"]},
        secret={"client_id": oauth.client_id, "client_secret": oauth.client_secret},
    )
    request = helpers.key_request(helpers.egress_group(kube), tailnet="lab", tags=("tag:lab",))
    ready = await make_minter().ensure_key(request)
    assert control_api.keys[ready.key_id].tags == ("tag:lab",)


@pytest.mark.parametrize(
    ("secret", "message"),
    [
        (None, "Secret tailwire-system/lab-creds not found"),
        ({"client_id": "kX"}, "missing key client_id or client_secret"),
    ],
)
async def test_missing_tailnet_credentials_name_what_is_missing(
    make_minter: MinterFactory,
    control_api: controlapi.FakeControlAPI,
    kube: kubeapi.KubeAPI,
    secret: dict[str, str] | None,
    message: str,
) -> None:
    helpers.tailnet_resource(kube, name="lab", spec={"apiURL": control_api.url}, secret=secret)
    request = helpers.key_request(helpers.egress_group(kube), tailnet="lab")
    with pytest.raises(errors.ConfigurationError, match=message):
        await make_minter().ensure_key(request)


async def test_unknown_tailnet_is_a_configuration_error(
    make_minter: MinterFactory, kube: kubeapi.KubeAPI
) -> None:
    request = helpers.key_request(helpers.egress_group(kube), tailnet="nowhere")
    with pytest.raises(errors.ConfigurationError, match="TailscaleTailnet nowhere not found"):
        await make_minter().ensure_key(request)
