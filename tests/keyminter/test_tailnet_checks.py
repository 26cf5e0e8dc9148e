"""The keyminter checks every TailscaleTailnet's control API with its Secret's credentials and
says what it found on `keys.tailnet`: connected, or the reason `keys.failed` would give.

Against the control-API fake and the emulated Kubernetes API (credentials really travel over
HTTP), with the fake's clock; the bus test runs the keyminter as `tailwire run` wires it."""

from __future__ import annotations

import asyncio
import base64

import kmock
import pytest
from nats.aio.client import Client

from tailwire.services.keyminter import checking, configuration
from tailwire.shared import bus, subjects
from tailwire.shared.events import cluster, keys
from tailwire.testing import controlapi, kubeapi

from . import helpers
from .conftest import KeyminterStarter, MinterFactory

HEARTBEAT = 3600.0


def snapshot(
    name: str, *, generation: int = 1, deleted: bool = False
) -> cluster.TailscaleTailnetSnapshot:
    return cluster.TailscaleTailnetSnapshot(
        meta=cluster.Meta(uid=f"uid-{name}", name=name, generation=generation),
        api_version="gateway.tailscale.com/v1alpha1",
        deleted=deleted,
    )


class Recorder:
    def __init__(self) -> None:
        self.events: list[keys.TailnetChecked] = []

    async def __call__(self, event: keys.TailnetChecked) -> None:
        self.events.append(event)


def make_checker(
    make_minter: MinterFactory, clock: controlapi.FakeClock, recorder: Recorder
) -> checking.TailnetChecker:
    return checking.TailnetChecker(
        directory=make_minter().tailnets,
        clock=clock,
        publish=recorder,
        interval=300.0,
        heartbeat=HEARTBEAT,
    )


def lab_tailnet(kube: kubeapi.KubeAPI, control_api: controlapi.FakeControlAPI) -> None:
    oauth = control_api.add_oauth_client(scopes=helpers.SCOPES, tags=["tag:lab"])
    helpers.tailnet_resource(
        kube,
        name="lab",
        spec={"tailnet": "example.com", "apiURL": control_api.url},
        secret={"client_id": oauth.client_id, "client_secret": oauth.client_secret},
    )


async def test_a_connected_tailnet_is_published_once_then_at_each_heartbeat(
    make_minter: MinterFactory,
    control_api: controlapi.FakeControlAPI,
    kube: kubeapi.KubeAPI,
    clock: controlapi.FakeClock,
) -> None:
    lab_tailnet(kube, control_api)
    recorder = Recorder()
    checker = make_checker(make_minter, clock, recorder)
    checker.note(snapshot("lab", generation=3))

    first = await checker.check("lab")
    assert first is not None
    assert (first.tailnet, first.uid, first.generation) == ("lab", "uid-lab", 3)
    assert (first.connected, first.reason) == (True, "Connected")
    assert first.checked_at == first.last_connected == clock.now()

    clock.advance(seconds=300)
    assert await checker.check("lab") is None  # nothing new: no message, no status write
    clock.advance(seconds=HEARTBEAT)
    again = await checker.check("lab")
    assert again is not None
    assert again.last_connected == clock.now()
    assert recorder.events == [first, again]


async def test_refused_credentials_are_reported_and_a_fixed_secret_is_picked_up(
    make_minter: MinterFactory,
    control_api: controlapi.FakeControlAPI,
    kube: kubeapi.KubeAPI,
    clock: controlapi.FakeClock,
) -> None:
    oauth = control_api.add_oauth_client(scopes=helpers.SCOPES, tags=["tag:lab"])
    helpers.tailnet_resource(
        kube,
        name="lab",
        spec={"apiURL": control_api.url},
        secret={"client_id": oauth.client_id, "client_secret": "wrong"},
    )
    recorder = Recorder()
    checker = make_checker(make_minter, clock, recorder)
    checker.note(snapshot("lab"))

    refused = await checker.check("lab")
    assert refused is not None
    assert (refused.connected, refused.reason) == (False, "AuthenticationFailed")
    assert refused.last_connected is None
    assert "wrong" not in refused.model_dump_json()

    kube.patch(
        "secrets",
        name="lab-creds",
        namespace=helpers.NAMESPACE,
        patch={"data": {"client_secret": base64.b64encode(oauth.client_secret.encode()).decode()}},
    )
    fixed = await checker.check("lab")  # no restart, no new snapshot: the Secret is re-read
    assert fixed is not None
    assert (fixed.connected, fixed.reason) == (True, "Connected")


@pytest.mark.parametrize(
    ("secret", "message"),
    [
        (None, "Secret tailwire-system/lab-creds not found"),
        ({"client_id": "kX"}, "missing key client_id or client_secret"),
    ],
)
async def test_missing_credentials_name_what_is_missing(
    make_minter: MinterFactory,
    control_api: controlapi.FakeControlAPI,
    kube: kubeapi.KubeAPI,
    clock: controlapi.FakeClock,
    secret: dict[str, str] | None,
    message: str,
) -> None:
    helpers.tailnet_resource(kube, name="lab", spec={"apiURL": control_api.url}, secret=secret)
    checker = make_checker(make_minter, clock, Recorder())
    checker.note(snapshot("lab"))
    event = await checker.check("lab")
    assert event is not None
    assert (event.connected, event.reason) == (False, "NotConfigured")
    assert message in event.message


async def test_a_headscale_tailnet_is_checked_with_its_api_key(
    make_minter: MinterFactory,
    control_api: controlapi.FakeControlAPI,
    kube: kubeapi.KubeAPI,
    clock: controlapi.FakeClock,
) -> None:
    helpers.tailnet_resource(
        kube,
        name="home",
        spec={"backend": "headscale", "apiURL": control_api.url, "headscale": {"user": "ops"}},
        secret={"api_key": control_api.add_headscale_api_key()},
    )
    checker = make_checker(make_minter, clock, Recorder())
    checker.note(snapshot("home"))
    event = await checker.check("home")
    assert event is not None
    assert (event.connected, event.reason) == (True, "Connected")


async def test_snapshots_decide_what_is_checked(
    make_minter: MinterFactory, clock: controlapi.FakeClock
) -> None:
    checker = make_checker(make_minter, clock, Recorder())
    checker.note(snapshot("lab", generation=1))
    checker.note(snapshot("home", generation=1))
    assert checker.known == ("home", "lab")
    checker.note(snapshot("lab", generation=1))  # a resync: nothing new to check
    checker.note(snapshot("lab", deleted=True))
    assert await checker.check("lab") is None  # no longer known: nothing to say
    remaining: tuple[str, ...] = checker.known
    assert remaining == ("home",)


async def test_the_keyminter_checks_a_tailnet_as_soon_as_its_snapshot_arrives(
    nats_client: Client,
    kube: kubeapi.KubeAPI,
    control_api: controlapi.FakeControlAPI,
    start_keyminter: KeyminterStarter,
) -> None:
    lab_tailnet(kube, control_api)
    tap = helpers.BusTap()
    await nats_client.subscribe(subjects.keys_tailnet("lab"), cb=tap.on_message)
    async with start_keyminter(
        configuration.KeyminterSettings(renewal_check_seconds=3600, tailnet_check_seconds=3600)
    ):
        ref = subjects.ObjectRef(kind=subjects.Kind.TAILSCALETAILNET, namespace=None, name="lab")
        await nats_client.jetstream().publish(
            subjects.cluster(ref), snapshot("lab").model_dump_json().encode()
        )
        async with asyncio.timeout(15):
            [message] = await tap.wait_for(subjects.keys_tailnet("lab"))

    event = keys.TailnetChecked.model_validate_json(message.data)
    assert (event.tailnet, event.connected) == ("lab", True)
    assert message.headers is not None
    assert message.headers[bus.MSG_ID_HEADER] == f"tailnet:lab:{event.checked_at.isoformat()}"


async def test_a_secret_the_keyminter_may_not_read_names_the_grant_it_needs(
    make_minter: MinterFactory,
    control_api: controlapi.FakeControlAPI,
    kube: kubeapi.KubeAPI,
    clock: controlapi.FakeClock,
) -> None:
    # As deploy/base deploys it: the keyminter reads Secrets in its own namespace only, and
    # this tailnet's Secret is the Tailscale operator's, in namespace tailscale.
    kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "tailscale"}})
    helpers.tailnet_resource(
        kube,
        name="homelab",
        spec={"apiURL": control_api.url, "oauthSecretNamespace": "tailscale"},
        secret=None,
    )
    forbidden = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'secrets "homelab-creds" is forbidden',
        "reason": "Forbidden",
        "code": 403,
    }
    kube.kmock[kmock.action.FETCH, kmock.resource("v1/secrets")] << 403 << forbidden
    checker = make_checker(make_minter, clock, Recorder())
    checker.note(snapshot("homelab"))
    event = await checker.check("homelab")
    assert event is not None
    assert (event.connected, event.reason) == (False, "NotConfigured")
    assert event.message == (
        "TailscaleTailnet homelab: Secret tailscale/homelab-creds: the keyminter may not read "
        "it; grant its ServiceAccount get on this Secret with a Role and RoleBinding in "
        "tailscale (see examples/homelab-stack.yaml), or move the Secret to tailwire-system"
    )


async def test_a_tailnet_deleted_during_its_check_gets_no_event(
    make_minter: MinterFactory,
    control_api: controlapi.FakeControlAPI,
    kube: kubeapi.KubeAPI,
    clock: controlapi.FakeClock,
) -> None:
    lab_tailnet(kube, control_api)
    recorder = Recorder()
    checker = make_checker(make_minter, clock, recorder)
    checker.note(snapshot("lab"))
    in_flight = asyncio.create_task(checker.check("lab"))
    await asyncio.sleep(0)  # the check is waiting for the API
    checker.note(snapshot("lab", deleted=True))
    assert await in_flight is None
    assert recorder.events == []


async def test_a_secret_not_annotated_for_the_tailnet_is_never_sent_anywhere(
    make_minter: MinterFactory,
    control_api: controlapi.FakeControlAPI,
    kube: kubeapi.KubeAPI,
    clock: controlapi.FakeClock,
) -> None:
    """Issue 18, finding 6: a TailscaleTailnet naming tailwire's credentials Secret with an
    apiURL of its creator's choosing receives nothing unless the Secret names that tailnet."""
    oauth = control_api.add_oauth_client(scopes=["auth_keys", "devices:core"], tags=["tag:k8s"])
    helpers.tailnet_resource(
        kube,
        name="lab",
        spec={"apiURL": control_api.url},
        secret={"client_id": oauth.client_id, "client_secret": oauth.client_secret},
    )
    # The attacker's tailnet points at the same Secret.
    kube.create(
        {
            "apiVersion": "gateway.tailscale.com/v1alpha1",
            "kind": "TailscaleTailnet",
            "metadata": {"name": "attacker"},
            "spec": {"apiURL": control_api.url, "oauthSecretName": "lab-creds"},
        }
    )
    calls_before = len(control_api.requests)
    checker = make_checker(make_minter, clock, Recorder())
    checker.note(snapshot("attacker"))
    event = await checker.check("attacker")
    assert event is not None
    assert (event.connected, event.reason) == (False, "NotConfigured")
    assert "not for this tailnet: annotate it tailwire.dev/tailnets: attacker" in event.message
    assert len(control_api.requests) == calls_before  # no token request was made
    checker.note(snapshot("lab"))
    lab = await checker.check("lab")
    assert lab is not None
    assert lab.connected
