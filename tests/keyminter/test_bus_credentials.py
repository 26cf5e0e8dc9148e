"""Nodeagent bus credentials through nats-server's auth callout, end to end: a real
nats-server configured by `permissions.render_nats_config(auth_callout_issuer=...)`, the
keyminter's responder, and TokenReview on the emulated API. A nodeagent connecting with its
pod-bound ServiceAccount token gets exactly its node's permissions; anything else is refused
with the reason logged."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import nats
import nats.errors
import nkeys
import prometheus_client
import pytest
from kubernetes_asyncio.client import ApiClient
from nats.aio.client import Client
from nats.aio.msg import Msg

from tailwire.services.keyminter import busauth, buscredentials
from tailwire.services.keyminter.adapters import timing, tokenreview
from tailwire.shared import bus, errors, ids, permissions, settings, subjects
from tailwire.shared.events import nodes
from tailwire.testing import kubeapi, natsserver, system
from tailwire.testing.system import processes
from tailwire.testing.system.processes import ServiceProcess
from tests.keyminter.helpers import NAMESPACE

AUDIENCE = "tailwire-nats"
SERVICE_ACCOUNT = "tailwire-nodeagent"
PASSWORDS = {"watcher": "w", "keyminter": "k", "renderer": "r", "dnsupdater": "d"}


@pytest.fixture
def issuer() -> nkeys.KeyPair:
    return buscredentials.issuer_from_seed(
        nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_ACCOUNT).decode()
    )


@pytest.fixture
def callout_nats(
    tmp_path: Path, issuer: nkeys.KeyPair, monkeypatch: pytest.MonkeyPatch
) -> Iterator[natsserver.NatsServer]:
    """As deploy/base runs it: the issuer's public key read from nats-server's environment."""
    monkeypatch.setenv("TAILWIRE_BUS_AUTH_ISSUER", issuer.public_key.decode())
    port = natsserver.free_port()
    config = permissions.render_nats_config(
        passwords=PASSWORDS,
        listen=f"127.0.0.1:{port}",
        store_dir=str(tmp_path / "js"),
        auth_callout_issuer="$TAILWIRE_BUS_AUTH_ISSUER",
    )
    server = natsserver.NatsServer(store_dir=tmp_path, port=port, config_text=config)
    server.start()
    yield server
    server.stop()


@contextlib.asynccontextmanager
async def answering(
    server: natsserver.NatsServer,
    kube: kubeapi.KubeAPI,
    issuer: nkeys.KeyPair,
    reviewer: Callable[[tokenreview.TokenReviewer], Any] = lambda real: real,
) -> AsyncIterator[None]:
    """The keyminter's responder, connected as the keyminter; the streams declared (by
    their owner, the renderer). `reviewer` may wrap the real TokenReview."""
    await natsserver.declare_as_owner(server.url, password="r")
    connection = await nats.connect(
        server.url,
        user="keyminter",
        password="k",
        inbox_prefix=bus.service_inbox_prefix(subjects.Service.KEYMINTER),
    )
    opened: list[ApiClient] = []

    async def api_client() -> ApiClient:
        if not opened:
            opened.append(await kube.api_client())
        return opened[0]

    responder = busauth.BusAuth(
        reviewer=reviewer(tokenreview.TokenReviewer(api_client, audience=AUDIENCE)),
        issuer=issuer,
        namespace=NAMESPACE,
        service_account=SERVICE_ACCOUNT,
        clock=timing.SystemClock(),
    )
    await responder.start(connection)
    try:
        yield
    finally:
        await responder.stop()
        await connection.close()
        for api in opened:
            await api.close()


@pytest.fixture
async def responder(
    callout_nats: natsserver.NatsServer, kube: kubeapi.KubeAPI, issuer: nkeys.KeyPair
) -> AsyncIterator[None]:
    async with answering(callout_nats, kube, issuer):
        yield


def _token_file(tmp_path: Path, token: str) -> Path:
    path = tmp_path / "token"
    path.write_text(token + "\n")
    return path


async def _refused(server: natsserver.NatsServer, token: str | None) -> str:
    errors: list[str] = []

    async def on_error(exc: Exception) -> None:
        errors.append(str(exc))

    client = Client()
    try:
        with pytest.raises((nats.errors.Error, OSError)):
            await client.connect(
                server.url,
                token=token,
                allow_reconnect=False,
                max_reconnect_attempts=0,
                error_cb=on_error,
                connect_timeout=5,
            )
    finally:
        await client.close()
    return " ".join(errors).lower()


def _answers(outcome: str) -> float:
    value = prometheus_client.REGISTRY.get_sample_value(
        "tailwire_keyminter_bus_auth_total", {"outcome": outcome}
    )
    return value or 0.0


@pytest.mark.usefixtures("responder")
async def test_a_nodeagent_token_gets_exactly_its_nodes_permissions(
    callout_nats: natsserver.NatsServer, kube: kubeapi.KubeAPI, tmp_path: Path
) -> None:
    token = kube.issue_token(
        namespace=NAMESPACE,
        service_account=SERVICE_ACCOUNT,
        audiences=(AUDIENCE,),
        node="node-a",
        pod="tailwire-nodeagent-x7k2p",
    )
    granted = _answers("granted")
    bus_settings = settings.BusSettings(
        nats_url=callout_nats.url, nats_token_file=str(_token_file(tmp_path, token))
    )
    broker = bus.make_broker(
        service="nodeagent", bus=bus_settings, inbox_prefix=permissions.inbox_prefix("node-a")
    )
    renderer = await nats.connect(callout_nats.url, user="renderer", password="r")
    seen: list[str] = []

    async def on_ack(msg: Msg) -> None:
        seen.append(msg.subject)

    await renderer.subscribe(subjects.node_acks_filter(), cb=on_ack)
    await renderer.flush()
    connection: Client = await broker.connect()
    try:
        ack = nodes.NodeAck(node=ids.NodeName("node-a"), generation=1)
        await bus.publish(broker, ack, subject=subjects.node_ack("node-a"))
        # Another node's ack: the server drops it (a permissions violation for this agent).
        other = nodes.NodeAck(node=ids.NodeName("node-b"), generation=1)
        await connection.publish(subjects.node_ack("node-b"), other.to_bytes())
        await connection.flush()
        await renderer.flush()
        await asyncio.sleep(0.3)
    finally:
        await broker.stop()
        await renderer.close()
    assert _answers("granted") == granted + 1
    assert seen == [subjects.node_ack("node-a")]


@pytest.mark.usefixtures("responder")
async def test_tokens_that_do_not_prove_a_nodeagent_on_a_node_are_refused(
    callout_nats: natsserver.NatsServer, kube: kubeapi.KubeAPI, caplog: pytest.LogCaptureFixture
) -> None:
    refusals = _answers("refused")
    someone_else = kube.issue_token(
        namespace=NAMESPACE, service_account="default", audiences=(AUDIENCE,), node="node-a"
    )
    unbound = kube.issue_token(
        namespace=NAMESPACE, service_account=SERVICE_ACCOUNT, audiences=(AUDIENCE,)
    )
    wrong_audience = kube.issue_token(
        namespace=NAMESPACE, service_account=SERVICE_ACCOUNT, node="node-a"
    )
    cases = {
        someone_else: "system:serviceaccount:tailwire-system:default is not "
        "system:serviceaccount:tailwire-system:tailwire-nodeagent",
        unbound: "the token names no node",
        wrong_audience: "is invalid for the target audiences ['tailwire-nats']",
        "not-a-token": "token not accepted: [invalid bearer token",
        None: "no token: a nodeagent connects with its ServiceAccount token",
    }
    for token, reason in cases.items():
        caplog.clear()
        said = await _refused(callout_nats, token)
        assert "authorization violation" in said, said
        refusals_logged = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
        [logged] = refusals_logged
        assert reason in logged
        if token:
            assert token not in logged  # never the token itself
    assert _answers("refused") == refusals + len(cases)


def test_the_issuer_must_be_an_account_seed_and_is_never_echoed() -> None:
    user_seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER).decode()
    with pytest.raises(errors.ConfigurationError, match="not an account seed") as caught:
        buscredentials.issuer_from_seed(user_seed)
    assert user_seed not in str(caught.value)
    with pytest.raises(errors.ConfigurationError, match="not an nkey seed"):
        buscredentials.issuer_from_seed("SAnot-a-seed")


def test_a_message_that_is_not_a_request_jwt_is_rejected_by_name() -> None:
    with pytest.raises(errors.MessageRejected, match="auth callout request: not a request JWT"):
        buscredentials.parse_request(b"hello")


def _agent(server: natsserver.NatsServer, tmp_path: Path, *, token: str) -> ServiceProcess:
    """`tailwire run nodeagent --dry-run` for node-a with a token file, as the DaemonSet runs it."""
    env = {
        "TAILWIRE_NATS_URL": server.url,
        "TAILWIRE_NATS_TOKEN_FILE": str(_token_file(tmp_path, token)),
        "TAILWIRE_NODE_NAME": "node-a",
    }
    return processes.dry_run_nodeagent(log_dir=tmp_path, env=env)


@pytest.mark.timeout(120)
async def test_a_nodeagent_started_before_the_keyminter_connects_once_it_answers(
    callout_nats: natsserver.NatsServer,
    kube: kubeapi.KubeAPI,
    issuer: nkeys.KeyPair,
    tmp_path: Path,
) -> None:
    """At install the DaemonSet and the keyminter start together: an agent refused (no
    answer yet) keeps trying, says why in its log, and is ready once the keyminter answers."""
    token = kube.issue_token(
        namespace=NAMESPACE, service_account=SERVICE_ACCOUNT, audiences=(AUDIENCE,), node="node-a"
    )
    agent = _agent(callout_nats, tmp_path, token=token)
    agent.start()
    try:
        # Nobody answers yet: how soon nats-server refuses varies (its callout timeout races
        # the client's connect timeout), so the test only makes sure the agent has tried.
        await asyncio.sleep(3)
        assert agent.running, agent.log_tail()
        assert not await agent.is_ready()
        async with answering(callout_nats, kube, issuer):
            await agent.wait_ready(within=50)
        assert "NATS connection:" in agent.log_tail(200)  # it said why it was not connected
    finally:
        await agent.kill()


@pytest.mark.timeout(150)
async def test_an_agent_refused_after_a_nats_restart_comes_back_when_answered(
    callout_nats: natsserver.NatsServer,
    kube: kubeapi.KubeAPI,
    issuer: nkeys.KeyPair,
    tmp_path: Path,
) -> None:
    """nats-server restarts while no keyminter answers: the agent's reconnects are refused.
    It keeps reconnecting (re-reading its token) and is back once a keyminter answers,
    instead of a connection that neither works nor closes."""
    token = kube.issue_token(
        namespace=NAMESPACE, service_account=SERVICE_ACCOUNT, audiences=(AUDIENCE,), node="node-a"
    )
    agent = _agent(callout_nats, tmp_path, token=token)
    async with answering(callout_nats, kube, issuer):
        agent.start()
        await agent.wait_ready(within=30)
    try:
        callout_nats.restart()

        def refused() -> bool:
            return "authorization violation" in agent.log_tail(200).lower()

        def back() -> bool:
            return "NATS connection re-established" in agent.log_tail(200)

        try:
            # The refusal must have reached the agent (how soon varies: nats-server's callout
            # timeout races the client's connect timeout); FastStream alone would stop
            # reconnecting here.
            await system.eventually(refused, within=60, what="a refused reconnect")
            assert agent.running
            async with answering(callout_nats, kube, issuer):
                await system.eventually(back, within=40, what="the agent back")
        except TimeoutError as exc:
            raise AssertionError(f"{exc}\n{agent.log_tail()}") from None
        assert agent.running
    finally:
        await agent.kill()


class SlowReviewer:
    """The real TokenReview for real tokens; junk tokens take JUNK_REVIEW_SECONDS each, as a
    flooded API server answers. Counts the reviews of each token."""

    def __init__(self, real: tokenreview.TokenReviewer) -> None:
        self.real = real
        self.calls: dict[str, int] = {}

    async def review(self, token: str) -> buscredentials.Review:
        self.calls[token] = self.calls.get(token, 0) + 1
        if token.startswith("junk-"):
            await asyncio.sleep(JUNK_REVIEW_SECONDS)
            return buscredentials.Review(authenticated=False, error="invalid bearer token")
        return await self.real.review(token)


# One at a time, 40 of them keep the callout busy for 12 s (the agent gives up after 10);
# answered concurrently, about a second.
JUNK_REVIEW_SECONDS = 0.3


async def test_junk_connections_do_not_keep_a_nodeagent_out_and_reviews_are_cached(
    callout_nats: natsserver.NatsServer, kube: kubeapi.KubeAPI, issuer: nkeys.KeyPair,
    tmp_path: Path,
) -> None:  # fmt: skip
    """Issue 18, finding 4: the callout answered one request at a time with a TokenReview
    each, so 40 junk connections made a real nodeagent fail to authenticate."""
    made: list[SlowReviewer] = []

    def slow(real: tokenreview.TokenReviewer) -> SlowReviewer:
        made.append(SlowReviewer(real))
        return made[0]

    token = kube.issue_token(
        namespace=NAMESPACE, service_account=SERVICE_ACCOUNT, audiences=(AUDIENCE,),
        node="node-a", pod="tailwire-nodeagent-x7k2p",
    )  # fmt: skip
    token_file = _token_file(tmp_path, token)
    async with answering(callout_nats, kube, issuer, reviewer=slow):
        (reviewer,) = made
        junk = [asyncio.create_task(_refused(callout_nats, f"junk-{i}")) for i in range(40)]
        try:
            await asyncio.sleep(0.2)  # the junk is in the responder's hands, reviews pending
            assert sum(reviewer.calls.values()) > 0
            for _ in range(2):  # the second time from the cache
                broker = bus.make_broker(
                    service="nodeagent",
                    bus=settings.BusSettings(
                        nats_url=callout_nats.url, nats_token_file=str(token_file)
                    ),
                    inbox_prefix=permissions.inbox_prefix("node-a"),
                )
                async with asyncio.timeout(10):
                    await broker.connect()
                await broker.stop()
            assert reviewer.calls[token] == 1
        finally:
            await asyncio.gather(*junk, return_exceptions=True)
