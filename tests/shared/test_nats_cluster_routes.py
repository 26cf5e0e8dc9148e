"""Issue 18, finding 5: the HA overlay's NATS routes are authenticated. With the config
`render_nats_config(cluster_routes=..., tls=..., tls_ca=...)` makes (deploy/overlays/ha),
three real nats-servers on loopback form a JetStream cluster over mutual-TLS routes (a
stream replicated 3 times is created), while a server whose certificate another CA signed
cannot join: its route is refused and the cluster still counts two routes per server."""

from __future__ import annotations

import json
import ssl
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest
import trustme
from nats.js import api

from tailwire.shared import bus, permissions, subjects
from tailwire.testing import natsserver

PASSWORDS = {"watcher": "w", "keyminter": "k", "renderer": "r", "dnsupdater": "d", "nodeagent": "n"}


def _config(
    tmp: Path,
    ca: trustme.CA,
    *,
    name: str,
    cluster_port: int,
    routes: list[int],
    trust: trustme.CA | None = None,
) -> str:
    """A server's config with a certificate `ca` signed, trusting `trust` (default: `ca`)."""
    cert = ca.issue_cert("localhost", "127.0.0.1")
    cert_file, key_file, ca_file = tmp / "tls.crt", tmp / "tls.key", tmp / "ca.crt"
    tmp.mkdir(parents=True, exist_ok=True)
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    (trust or ca).cert_pem.write_to_path(str(ca_file))
    return permissions.render_nats_config(
        passwords=PASSWORDS,
        store_dir=str(tmp / "js"),
        cluster_routes=tuple(f"nats://127.0.0.1:{port}" for port in routes),
        cluster_listen=f"127.0.0.1:{cluster_port}",
        server_name=name,
        tls=(str(cert_file), str(key_file)),
        tls_ca=str(ca_file),
    )


@pytest.fixture
def bus_ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def cluster(tmp_path: Path, bus_ca: trustme.CA) -> Iterator[list[natsserver.NatsServer]]:
    ports = [natsserver.free_port() for _ in range(3)]
    servers = [
        natsserver.NatsServer(
            store_dir=tmp_path / f"n{i}",
            config_text=_config(
                tmp_path / f"n{i}", bus_ca, name=f"n{i}", cluster_port=port, routes=ports
            ),
        )
        for i, port in enumerate(ports)
    ]
    with natsserver.all_running(servers):
        yield servers


def _routes(server: natsserver.NatsServer) -> int:
    """The servers this one has routes to (nats-server pools several routes per peer)."""
    url = f"http://127.0.0.1:{server.monitor_port}/routez"
    with urllib.request.urlopen(url, timeout=2) as response:
        return len({route["remote_id"] for route in json.load(response)["routes"] or []})


def _wait_routes(servers: list[natsserver.NatsServer], count: int, within: float) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if all(_routes(s) >= count for s in servers):
            return
        time.sleep(0.2)
    raise AssertionError(f"routes {[_routes(s) for s in servers]}, wanted {count} each")


async def test_three_servers_form_a_jetstream_cluster_over_mutual_tls_routes(
    cluster: list[natsserver.NatsServer], bus_ca: trustme.CA
) -> None:
    _wait_routes(cluster, 2, within=20)
    context = ssl.create_default_context()
    bus_ca.configure_trust(context)
    client = await nats.connect(
        f"tls://localhost:{cluster[0].port}",
        user="renderer",
        password="r",
        tls=context,
        inbox_prefix=bus.service_inbox_prefix(subjects.Service.RENDERER),
    )
    try:
        js = client.jetstream(timeout=5)
        deadline = time.monotonic() + 30
        while True:  # the meta leader is elected a moment after the routes are up
            try:
                await js.add_stream(
                    api.StreamConfig(
                        name="TAILWIRE_CLUSTER", subjects=["tailwire.v1.cluster.>"], num_replicas=3
                    )
                )
                break
            except (nats.errors.TimeoutError, nats.js.errors.Error):
                if time.monotonic() > deadline:
                    raise
        info = await js.stream_info("TAILWIRE_CLUSTER")
        assert info.cluster is not None
        assert len(info.cluster.replicas or []) == 2
    finally:
        await client.close()


def test_a_server_with_another_cas_certificate_cannot_join(
    cluster: list[natsserver.NatsServer], tmp_path: Path, bus_ca: trustme.CA
) -> None:
    """The rogue trusts the bus CA (its certificate is public), so it would accept the
    cluster's servers; they refuse its route because no certificate of theirs signed it."""
    _wait_routes(cluster, 2, within=20)
    cluster_ports = [
        int(s.config_text.split('listen: "127.0.0.1:')[1].split('"')[0])  # type: ignore[union-attr]
        for s in cluster
    ]
    rogue = natsserver.NatsServer(
        store_dir=tmp_path / "rogue",
        config_text=_config(
            tmp_path / "rogue",
            trustme.CA(),  # not the bus CA
            trust=bus_ca,
            name="rogue",
            cluster_port=natsserver.free_port(),
            routes=cluster_ports,
        ),
    )
    rogue.start()
    try:
        time.sleep(3)  # several route attempts (nats-server retries every second)
        assert _routes(rogue) == 0, rogue.log_tail()
        assert [_routes(s) for s in cluster] == [2, 2, 2]
        assert "tls" in rogue.log_tail(50).lower() or "tls" in cluster[0].log_tail(50).lower()
    finally:
        rogue.stop()


def test_routes_are_never_rendered_without_their_authentication() -> None:
    with pytest.raises(ValueError, match="cluster routes need tls and tls_ca"):
        permissions.render_nats_config(
            passwords=PASSWORDS, cluster_routes=("nats://a:6222",), tls=("c", "k")
        )
