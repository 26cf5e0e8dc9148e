"""Issue 18 (low): a nodeagent's bus grant expires with the token it was given for.

On a real nats-server with the auth callout and the keyminter's responder: the user JWT
carries the token's `exp`, nats-server ends the connection when it passes, and an agent
whose token kubelet rotated in the meantime has reconnected with the new one before that
(`bus.TokenFile.follow`), so its connection lives on.

Stand-in, and why: the TokenReview is a stub that accepts the test's tokens. The real
kube-apiserver cannot issue a token that expires within a test (TokenRequest's minimum is
ten minutes); tests/keyminter/test_bus_credentials.py covers the real review."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import cast

import nats
import nkeys
import pytest
from nats.aio.client import Client

from tailwire.services.keyminter import busauth, buscredentials
from tailwire.services.keyminter.adapters import timing, tokenreview
from tailwire.shared import bus, permissions, settings, subjects
from tailwire.testing import natsserver
from tests.keyminter.helpers import NAMESPACE

SERVICE_ACCOUNT = "tailwire-nodeagent"
PASSWORDS = {"watcher": "w", "keyminter": "k", "renderer": "r", "dnsupdater": "d"}


def _token(*, expires_in: float, serial: int) -> str:
    """A JWT-shaped ServiceAccount token that expires in `expires_in` seconds."""

    def b64(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    payload = {"exp": int(time.time() + expires_in), "jti": f"t{serial}"}
    return f"{b64({'alg': 'RS256'})}.{b64(payload)}.c2ln"


class AcceptingReviewer:
    """TokenReview's answer for a projected token of the nodeagent on node-a."""

    async def review(self, token: str) -> buscredentials.Review:
        return buscredentials.Review(
            authenticated=True,
            username=f"system:serviceaccount:{NAMESPACE}:{SERVICE_ACCOUNT}",
            extra={buscredentials.NODE_NAME_CLAIM: ("node-a",)},
        )


@pytest.fixture
def callout_nats(tmp_path: Path) -> Iterator[tuple[natsserver.NatsServer, nkeys.KeyPair]]:
    issuer = buscredentials.issuer_from_seed(
        nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_ACCOUNT).decode()
    )
    port = natsserver.free_port()
    config = permissions.render_nats_config(
        passwords=PASSWORDS,
        listen=f"127.0.0.1:{port}",
        store_dir=str(tmp_path / "js"),
        auth_callout_issuer=issuer.public_key.decode(),
    )
    server = natsserver.NatsServer(store_dir=tmp_path, port=port, config_text=config)
    server.start()
    yield server, issuer
    server.stop()


@pytest.fixture
async def server(
    callout_nats: tuple[natsserver.NatsServer, nkeys.KeyPair],
) -> AsyncIterator[natsserver.NatsServer]:
    """nats-server with the keyminter's responder answering."""
    nats_server, issuer = callout_nats
    connection = await nats.connect(
        nats_server.url,
        user="keyminter",
        password="k",
        inbox_prefix=bus.service_inbox_prefix(subjects.Service.KEYMINTER),
    )
    responder = busauth.BusAuth(
        reviewer=cast(tokenreview.TokenReviewer, AcceptingReviewer()),
        issuer=issuer,
        namespace=NAMESPACE,
        service_account=SERVICE_ACCOUNT,
        clock=timing.SystemClock(),
    )
    await responder.start(connection)
    yield nats_server
    await responder.stop()
    await connection.close()


async def _agent(
    server: natsserver.NatsServer, token_path: Path
) -> tuple[bus.GrantedBroker, asyncio.Event]:
    closed = asyncio.Event()

    async def on_closed() -> None:
        closed.set()

    broker = bus.make_broker(
        service="nodeagent",
        bus=settings.BusSettings(nats_url=server.url, nats_token_file=str(token_path)),
        inbox_prefix=permissions.inbox_prefix("node-a"),
        closed_cb=on_closed,
    )
    assert isinstance(broker, bus.GrantedBroker)
    await broker.connect()
    return broker, closed


def test_the_grant_carries_the_tokens_expiry() -> None:
    token = _token(expires_in=120, serial=1)
    expires = buscredentials.token_expiry(token)
    assert expires is not None
    assert abs(expires.timestamp() - (time.time() + 120)) < 2
    assert buscredentials.token_expiry("opaque-token") is None
    assert buscredentials.token_expiry("a.bm90IGpzb24.c") is None


async def test_without_a_new_token_the_server_ends_the_connection_when_the_token_expires(
    server: natsserver.NatsServer, tmp_path: Path
) -> None:
    path = tmp_path / "token"
    path.write_text(_token(expires_in=3, serial=1))
    broker, closed = await _agent(server, path)
    try:
        async with asyncio.timeout(10):  # "nats-server kept a connection whose grant expired"
            await closed.wait()
        last = broker.connection.last_error if broker.connection is not None else None
        assert "expired" in str(last).lower()
    finally:
        with contextlib.suppress(nats.errors.ConnectionClosedError):
            await broker.stop()


async def test_a_rotated_token_renews_the_grant_before_the_old_one_expires(
    server: natsserver.NatsServer, tmp_path: Path
) -> None:
    path = tmp_path / "token"
    path.write_text(_token(expires_in=4, serial=1))
    broker, closed = await _agent(server, path)
    connection = await broker.connect()
    following = asyncio.create_task(broker.token_file.follow(connection, every=0.2))
    try:
        await asyncio.sleep(1)
        path.write_text(_token(expires_in=120, serial=2))  # kubelet rotates it in place
        await asyncio.sleep(5)  # past the first token's expiry
        assert not closed.is_set(), f"the connection was ended: {connection.last_error}"
        assert connection.is_connected
        assert broker.token_file.used == path.read_text()
        await connection.publish(subjects.node_ack("node-a"), b"{}")
        await connection.flush(timeout=2)
    finally:
        following.cancel()
        await broker.stop()


async def test_an_expired_token_is_refused(server: natsserver.NatsServer) -> None:
    client = Client()
    try:
        with pytest.raises(nats.errors.Error):
            await client.connect(
                server.url,
                token=_token(expires_in=-5, serial=1),
                allow_reconnect=False,
                connect_timeout=5,
            )
    finally:
        await client.close()
