"""TLS to nats-server: a server configured by `render_nats_config(tls=...)` accepts only TLS
clients; services connect with `tls://` and TAILWIRE_NATS_TLS_CA_FILE, verify the server's
certificate (hostname included), and refuse one their CA did not sign.

Real nats-server, certificates from a throwaway CA (trustme), loopback only."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest
import trustme

from tailwire.shared import bus, errors, permissions, settings
from tailwire.testing import natsserver
from tailwire.testing.system import processes

NODE = "node-a"
PASSWORDS = {
    "watcher": "w",
    "keyminter": "k",
    "renderer": "r",
    "dnsupdater": "d",
    permissions.nodeagent_user(NODE): "n",
}


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tls_server(tmp_path: Path, ca: trustme.CA) -> Iterator[natsserver.NatsServer]:
    cert = ca.issue_cert("localhost", "127.0.0.1")
    cert_file, key_file = tmp_path / "server.pem", tmp_path / "server.key"
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    port = natsserver.free_port()
    config = permissions.render_nats_config(
        passwords=PASSWORDS,
        nodes=(NODE,),
        listen=f"127.0.0.1:{port}",
        store_dir=str(tmp_path / "js"),
        tls=(str(cert_file), str(key_file)),
    )
    server = natsserver.NatsServer(store_dir=tmp_path, port=port, config_text=config)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def ca_file(tmp_path: Path, ca: trustme.CA) -> Path:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


def bus_settings(
    server: natsserver.NatsServer, *, ca_file: Path | None, host: str
) -> settings.BusSettings:
    return settings.BusSettings(
        nats_url=f"tls://{host}:{server.port}",
        nats_user="renderer",
        nats_password="r",  # type: ignore[arg-type]
        nats_tls_ca_file=str(ca_file) if ca_file else None,
    )


async def test_a_service_connects_over_tls_with_the_ca(
    tls_server: natsserver.NatsServer, ca_file: Path
) -> None:
    config = bus_settings(tls_server, ca_file=ca_file, host="localhost")
    broker = bus.make_broker(service="renderer", bus=config)
    try:
        async with asyncio.timeout(10):
            await bus.connect_and_declare(broker, bus=config)
        assert broker.connection is not None
        assert broker.connection.connected_url is not None
        assert broker.connection.connected_url.scheme == "tls"
        info = await broker.connection.jetstream().stream_info(bus.CLUSTER_STREAM)
        assert info.config.name == bus.CLUSTER_STREAM
    finally:
        await broker.stop()


async def test_a_plain_client_gets_nothing_from_a_tls_only_server(
    tls_server: natsserver.NatsServer,
) -> None:
    with pytest.raises(Exception) as refused:  # noqa: PT011 (whatever nats-py raises)
        async with asyncio.timeout(10):
            await nats.connect(tls_server.url, user="renderer", password="r", allow_reconnect=False)
    assert not isinstance(refused.value, TimeoutError)


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
async def test_a_server_our_ca_did_not_sign_is_refused_and_the_log_says_why(
    tls_server: natsserver.NatsServer, tmp_path: Path, host: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Like any trouble with NATS, the service keeps trying (the CA may be fixed by a
    rollout) and logs the reason; it never talks to the impostor."""
    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    config = bus_settings(tls_server, ca_file=other, host=host)
    broker = bus.make_broker(service="renderer", bus=config)
    caplog.set_level(logging.WARNING)
    try:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(2):
                await broker.connect()
    finally:
        await broker.stop()
    assert "renderer: NATS connection: " in caplog.text
    assert "CERTIFICATE_VERIFY_FAILED" in caplog.text


def test_a_ca_file_that_is_not_there_names_the_setting(tmp_path: Path) -> None:
    config = settings.BusSettings(nats_url="tls://nats:4222", nats_tls_ca_file=str(tmp_path / "x"))
    with pytest.raises(
        errors.ConfigurationError,
        match=r"TAILWIRE_NATS_TLS_CA_FILE: .* is not a readable PEM CA bundle",
    ):
        bus.tls_context(config)


def test_plain_nats_urls_stay_plain() -> None:
    assert bus.tls_context(settings.BusSettings(nats_url="nats://127.0.0.1:4222")) is None
    assert bus.tls_context(settings.BusSettings(nats_url="tls://nats:4222")) is not None


async def test_tailwire_run_reads_the_tls_settings_from_its_environment(
    tls_server: natsserver.NatsServer, ca_file: Path, tmp_path: Path
) -> None:
    central = bus_settings(tls_server, ca_file=ca_file, host="localhost")
    renderer = bus.make_broker(service="renderer", bus=central)
    await bus.connect_and_declare(renderer, bus=central)  # the streams a nodeagent waits for
    await renderer.stop()
    agent = processes.dry_run_nodeagent(
        node=NODE,
        log_dir=tmp_path,
        env={
            "TAILWIRE_NATS_URL": f"tls://localhost:{tls_server.port}",
            "TAILWIRE_NATS_USER": permissions.nodeagent_user(NODE),
            "TAILWIRE_NATS_PASSWORD": "n",
            "TAILWIRE_NATS_TLS_CA_FILE": str(ca_file),
        },
    )
    agent.start()
    try:
        await agent.wait_ready(within=30)
        assert await agent.stop() == 0
    finally:
        await agent.kill()
