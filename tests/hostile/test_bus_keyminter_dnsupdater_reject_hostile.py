"""The keyminter and the dnsupdater under hostile messages on their real subjects: each is
dead-lettered with a reason (for the keyminter also a good request on a subject that names
another owner, or an owner kind it mints nothing for), no exception escapes a handler (the
keyminter's durable consumer would otherwise redeliver it forever), and both still serve a
good message afterwards."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from hypothesis import HealthCheck, given, settings
from kubernetes_asyncio import client
from nats.aio.client import Client
from opentelemetry.sdk.trace import TracerProvider

from tailwire.services.dnsupdater import app as dns_app
from tailwire.services.dnsupdater import config as dns_config
from tailwire.shared import runtime, subjects
from tailwire.shared import settings as tw_settings
from tailwire.shared.events import base, keys
from tailwire.testing import controlapi, kubeapi, system
from tests.dnsupdater import snapshots
from tests.keyminter import helpers as key_helpers
from tests.keyminter.conftest import http_factory

from . import harness, payloads

OWNER = base.OwnerRef(
    api_version="tailscale.rajsingh.info/v1alpha1", kind="EgressGroup", name="g", uid="u-g"
)
REF = subjects.ObjectRef(kind=subjects.Kind.EGRESSGROUP, namespace=None, name="g")
REQUEST = keys.KeyRequest(
    owner=OWNER,
    hostname_prefix="tailwire-g",
    secret_name="tailwire-gw-g-authkey",
    secret_namespace=key_helpers.NAMESPACE,
)
KEY_FEEDS = [
    (
        REQUEST,
        [
            subjects.keys_request(REF),
            "tailwire.v1.keys.request.egressgroup._.~E2~9C~93",
            "tailwire.v1.keys.request.junk",
        ],
    )
]
MISADDRESSED = payloads.valid_body_on(
    [
        subjects.keys_request(
            subjects.ObjectRef(kind=subjects.Kind.EGRESSGROUP, namespace=None, name="other")
        ),
        "tailwire.v1.keys.request.pod.ns.x",
        "tailwire.v1.keys.request.egressgroup._.UPPER",
    ],
    good=REQUEST,
    why="a good request on another owner's subject",
)
WRONG_KIND = payloads.valid_body_on(
    [subjects.keys_request(REF)],
    good=REQUEST.model_copy(update={"owner": OWNER.model_copy(update={"kind": "Pod"})}),
    why="an owner kind tailwire mints nothing for",
)
DNS_FEEDS = [
    (snapshots.tailscale_service(), ["tailwire.v1.cluster.service.tailscale.envoy"]),
    (snapshots.gateway(), ["tailwire.v1.cluster.gateway.tailscale.tailscale-gateway"]),
    (
        snapshots.route("web", hostnames=("web.example.test",)),
        ["tailwire.v1.cluster.httproute.apps.web", "tailwire.v1.cluster.httproute.~C3~BC.x~2Ey"],
    ),
]
BOUNDED = settings(
    max_examples=4,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture
async def keyminter(
    bus_settings: tw_settings.BusSettings,
    tracer_provider: TracerProvider,
    tailscale_settings: tw_settings.TailscaleSettings,
    emulator_client: client.ApiClient,
    clock: controlapi.FakeClock,
    nats_client: Client,  # the streams declared, as their owner (the renderer) would
) -> AsyncIterator[runtime.ServiceRuntime]:
    async with key_helpers.running_keyminter(
        bus_settings=bus_settings,
        tracer_provider=tracer_provider,
        tailscale=tailscale_settings,
        emulator_client=emulator_client,
        clock=clock,
        http=http_factory,
    ) as running:
        yield running


@pytest.fixture
async def dnsupdater(
    bus_settings: tw_settings.BusSettings,
    tracer_provider: TracerProvider,
    nats_client: Client,  # the streams declared, as their owner (the renderer) would
) -> AsyncIterator[dns_app.Wired]:
    # A zone whose RFC 2136 server does not answer: the handlers run, the reconciler retries.
    wired = dns_app.wire(
        bus_settings=bus_settings,
        tracer_provider=tracer_provider,
        dns_settings=dns_config.DnsUpdaterSettings.model_validate(
            {
                "zones": [{"zone": "example.test", "backends": ["rfc2136"]}],
                "rfc2136_port": 9,
                "tsig_key_name": "k",
                "tsig_secret": "c2VjcmV0",
                "timeout": 0.2,
            }
        ),
    )
    await wired.runtime.app.start()
    yield wired
    await wired.runtime.app.stop()


def collector(service: str) -> object:
    @pytest.fixture
    async def collect(nats_client: Client) -> harness.Rejections:
        rejections = harness.Rejections(nats_client, service=service)
        await rejections.open()
        return rejections

    return collect


key_rejections = collector("keyminter")
dns_rejections = collector("dnsupdater")


@BOUNDED
@given(batch=payloads.batches(*KEY_FEEDS, size=8, extra=MISADDRESSED | WRONG_KIND))
async def test_keyminter_dead_letters_every_hostile_request(
    batch: list[payloads.Hostile],
    keyminter: runtime.ServiceRuntime,
    key_rejections: harness.Rejections,
) -> None:
    with harness.error_log() as errors_seen:
        await key_rejections.check(batch)
    assert errors_seen.lines() == []


async def test_keyminter_mints_after_hostile_requests(
    keyminter: runtime.ServiceRuntime,
    key_rejections: harness.Rejections,
    nats_client: Client,
    kube: kubeapi.KubeAPI,
) -> None:
    junk = [
        payloads.Hostile(
            subject=subjects.keys_request(REF), body=b"{}", headers={}, why="empty request"
        )
    ]
    await key_rejections.check(junk)
    request = key_helpers.key_request(key_helpers.egress_group(kube))
    ready = await nats_client.subscribe(subjects.keys_filter("ready"))
    payments = subjects.ObjectRef(kind=subjects.Kind.EGRESSGROUP, namespace=None, name="payments")
    await nats_client.jetstream().publish(subjects.keys_request(payments), request.to_bytes())
    message = await ready.next_msg(timeout=15)
    assert keys.KeyReady.model_validate_json(message.data).owner == request.owner


@BOUNDED
@given(batch=payloads.batches(*DNS_FEEDS, size=8))
async def test_dnsupdater_dead_letters_every_hostile_snapshot(
    batch: list[payloads.Hostile],
    dnsupdater: dns_app.Wired,
    dns_rejections: harness.Rejections,
) -> None:
    with harness.error_log() as errors_seen:
        await dns_rejections.check(batch)
    assert errors_seen.lines() == []


async def test_dnsupdater_takes_a_good_snapshot_after_hostile_ones(
    dnsupdater: dns_app.Wired, dns_rejections: harness.Rejections, nats_client: Client
) -> None:
    subject = "tailwire.v1.cluster.httproute.apps.web"
    junk = [payloads.Hostile(subject=subject, body=b"[]", headers={}, why="a list")]
    await dns_rejections.check(junk)
    route = snapshots.route("web", hostnames=("web.example.test",))
    await nats_client.jetstream().publish(subject, route.to_bytes())
    await system.eventually(
        lambda: any(r.meta.name == "web" for r in dnsupdater.view.routes.values()),
        within=10,
        what="the route in the dnsupdater's view",
    )
