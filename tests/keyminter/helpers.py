"""Helpers of the keyminter tests: owners, requests, and what the fakes hold."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator

from kubernetes_asyncio import client
from nats.aio.msg import Msg
from opentelemetry.sdk.trace import TracerProvider

from tailwire.services.keyminter import app, configuration
from tailwire.services.keyminter.adapters import tailnets
from tailwire.shared import runtime, settings
from tailwire.shared.events import base, keys
from tailwire.shared.k8s import names
from tailwire.shared.resources import egressgroup, tailscaletailnet
from tailwire.testing import controlapi, kubeapi

NAMESPACE = "tailwire-system"
SCOPES = ["auth_keys", "devices:core"]


class FakeSleeper:
    """Records every wait and moves the fake clock by it, at once."""

    def __init__(self, clock: controlapi.FakeClock) -> None:
        self.clock = clock
        self.waits: list[float] = []

    async def __call__(self, seconds: float, /) -> None:
        self.waits.append(seconds)
        self.clock.advance(seconds=max(0.0, seconds))


def egress_group(kube: kubeapi.KubeAPI, *, name: str = "payments") -> base.OwnerRef:
    """An EgressGroup in the emulator, as the owner a request names."""
    created = kube.create(
        {
            "apiVersion": egressgroup.API_VERSION,
            "kind": egressgroup.KIND,
            "metadata": {"name": name},
            "spec": {"selector": {"podSelector": {"matchLabels": {"app": name}}}},
        }
    )
    return base.OwnerRef(
        api_version=egressgroup.API_VERSION,
        kind=egressgroup.KIND,
        name=name,
        uid=created["metadata"]["uid"],
    )


def key_request(
    owner: base.OwnerRef,
    *,
    tags: tuple[str, ...] = ("tag:k8s",),
    tailnet: str | None = None,
    revoke: bool = False,
    nested_prefixes: tuple[str, ...] = (),
) -> keys.KeyRequest:
    return keys.KeyRequest(
        owner=owner,
        tailnet=tailnet,
        tags=tags,
        hostname_prefix=names.hostname_prefix(owner.name),
        secret_name=names.authkey_secret(owner.name),
        secret_namespace=NAMESPACE,
        revoke=revoke,
        nested_prefixes=nested_prefixes,
    )


def stored_authkey(kube: kubeapi.KubeAPI, request: keys.KeyRequest) -> str:
    """The key in the owner's Secret, read the way a gateway pod would get it."""
    secret = kube.get("secrets", name=request.secret_name, namespace=request.secret_namespace)
    assert secret is not None, "no Secret was written"
    return base64.b64decode(secret["data"][names.AUTHKEY_SECRET_KEY]).decode()


def valid_keys(fake: controlapi.FakeControlAPI) -> list[str]:
    now = fake.clock.now()
    return sorted(k.id for k in fake.keys.values() if not k.invalid(now))


@contextlib.asynccontextmanager
async def running_keyminter(
    *,
    bus_settings: settings.BusSettings,
    tracer_provider: TracerProvider,
    tailscale: settings.TailscaleSettings,
    emulator_client: client.ApiClient,
    clock: controlapi.FakeClock,
    http: tailnets.HttpFactory,
    keyminter: configuration.KeyminterSettings | None = None,
) -> AsyncIterator[runtime.ServiceRuntime]:
    """The keyminter as `tailwire run keyminter` wires it, on the test's NATS and fakes."""

    async def api_client() -> client.ApiClient:
        return emulator_client

    service = app.create(
        bus_settings=bus_settings,
        tracer_provider=tracer_provider,
        keyminter_settings=keyminter or configuration.KeyminterSettings(renewal_check_seconds=3600),
        tailscale_settings=tailscale,
        kube_settings=settings.KubernetesSettings(namespace=NAMESPACE),
        api_client=api_client,
        http=http,
        clock=clock,
    )
    await service.app.start()
    try:
        yield service
    finally:
        await service.app.stop()


class BusTap:
    """Every message on `tailwire.>` (core NATS sees stream publishes too), in order."""

    def __init__(self) -> None:
        self.messages: list[Msg] = []
        self._arrived = asyncio.Event()

    async def on_message(self, msg: Msg) -> None:
        self.messages.append(msg)
        self._arrived.set()

    async def wait_for(self, prefix: str, *, count: int = 1) -> list[Msg]:
        """The first `count` messages whose subject starts with `prefix` (callers bound the
        wait with `asyncio.timeout`)."""
        while True:
            found = [m for m in self.messages if m.subject.startswith(prefix)]
            if len(found) >= count:
                return found[:count]
            self._arrived.clear()
            await self._arrived.wait()


def tailnet_resource(
    kube: kubeapi.KubeAPI, *, name: str, spec: dict[str, object], secret: dict[str, str] | None
) -> None:
    """A TailscaleTailnet `name` and, unless None, its credentials Secret `<name>-creds`."""
    kube.create(
        {
            "apiVersion": tailscaletailnet.API_VERSION,
            "kind": tailscaletailnet.KIND,
            "metadata": {"name": name},
            "spec": {"oauthSecretName": f"{name}-creds", **spec},
        }
    )
    if secret is not None:
        kube.create(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {
                    "name": f"{name}-creds",
                    "namespace": NAMESPACE,
                    "annotations": {tailscaletailnet.SECRET_TAILNETS_ANNOTATION: name},
                },
                "data": {k: base64.b64encode(v.encode()).decode() for k, v in secret.items()},
            }
        )
