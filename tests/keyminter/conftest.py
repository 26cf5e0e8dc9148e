"""Fixtures of the keyminter tests: the control-API fake, an emulated Kubernetes API, time.

Everything real but time: the project's clients speak HTTP to the control-API fake and to
the Kubernetes emulator on loopback; the keyminter's clock is the fake's own `FakeClock`,
and its sleeper advances that clock instead of waiting.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager

import httpx
import pydantic
import pytest
from kubernetes_asyncio import client
from opentelemetry.sdk.trace import TracerProvider

from tailwire.services.keyminter import configuration, domain, minting
from tailwire.services.keyminter.adapters import secrets, tailnets
from tailwire.shared import runtime, settings
from tailwire.testing import controlapi, kubeapi

from . import helpers
from .helpers import NAMESPACE, SCOPES, FakeSleeper


@pytest.fixture
def clock(control_api: controlapi.FakeControlAPI) -> controlapi.FakeClock:
    """The fake control API's clock, which the keyminter reads too."""
    assert isinstance(control_api.clock, controlapi.FakeClock)
    return control_api.clock


@pytest.fixture
def sleeper(clock: controlapi.FakeClock) -> FakeSleeper:
    return FakeSleeper(clock)


@pytest.fixture
def kube(kube_emulator: kubeapi.KubeAPI) -> kubeapi.KubeAPI:
    """The emulated Kubernetes API (tests write and read Secrets behind the keyminter's
    back, which only the emulator allows), with tailwire's namespace."""
    kube_emulator.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    return kube_emulator


@pytest.fixture
async def emulator_client(kube: kubeapi.KubeAPI) -> AsyncIterator[client.ApiClient]:
    """A kubernetes-asyncio client for `kube` (the shared `emulator_client` may be K3s)."""
    async with await kube.api_client() as api_client:
        yield api_client


@pytest.fixture
def tailscale_settings(control_api: controlapi.FakeControlAPI) -> settings.TailscaleSettings:
    oauth = control_api.add_oauth_client(scopes=SCOPES, tags=["tag:k8s", "tag:payments"])
    return settings.TailscaleSettings(
        tailscale_api_url=control_api.url,
        tailscale_tailnet="-",
        tailscale_oauth_client_id=oauth.client_id,
        tailscale_oauth_client_secret=pydantic.SecretStr(oauth.client_secret),
    )


def http_factory(base_url: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=base_url, timeout=5.0)


MinterFactory = Callable[..., minting.Minter]


@pytest.fixture
async def make_minter(
    emulator_client: client.ApiClient,
    control_api: controlapi.FakeControlAPI,
    tailscale_settings: settings.TailscaleSettings,
    sleeper: FakeSleeper,
) -> AsyncIterator[MinterFactory]:
    """Builds keyminters (several stand for restarts or replicas); all closed afterwards."""
    made: list[minting.Minter] = []

    async def api_client() -> client.ApiClient:
        return emulator_client

    def make(
        *,
        tailscale: settings.TailscaleSettings | None = None,
        backoff: domain.Backoff | None = None,
        rate: float = 100.0,
        burst: int = 100,
    ) -> minting.Minter:
        directory = tailnets.Tailnets(
            tailscale=tailscale or tailscale_settings,
            kube=settings.KubernetesSettings(namespace=NAMESPACE),
            api_client=api_client,
            clock=control_api.clock,
            sleep=sleeper,
            backoff=backoff or domain.Backoff(base=1.0, cap=60.0, attempts=5),
            rate=rate,
            burst=burst,
            http=http_factory,
            rng=random.Random(7),
        )
        minter = minting.Minter(
            store=secrets.SecretStore(api_client),
            tailnets=directory,
            clock=control_api.clock,
            policy=minting.Policy(renewal_fraction=0.8, key_expiry_seconds=90 * 24 * 3600),
        )
        made.append(minter)
        return minter

    yield make
    for minter in made:
        await minter.tailnets.close()


KeyminterStarter = Callable[..., AbstractAsyncContextManager[runtime.ServiceRuntime]]


@pytest.fixture
def start_keyminter(
    bus_settings: settings.BusSettings,
    tracer_provider: TracerProvider,
    tailscale_settings: settings.TailscaleSettings,
    emulator_client: client.ApiClient,
    clock: controlapi.FakeClock,
) -> KeyminterStarter:
    """`start_keyminter(settings=None)`: the keyminter as `tailwire run` wires it, on this
    test's NATS, control-API fake, emulated API and clock (async context manager)."""

    def start(
        keyminter: configuration.KeyminterSettings | None = None,
    ) -> AbstractAsyncContextManager[runtime.ServiceRuntime]:
        return helpers.running_keyminter(
            bus_settings=bus_settings,
            tracer_provider=tracer_provider,
            tailscale=tailscale_settings,
            emulator_client=emulator_client,
            clock=clock,
            http=http_factory,
            keyminter=keyminter,
        )

    return start
