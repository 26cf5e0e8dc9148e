"""Nodeagent bus credentials survive a keyminter failover: two keyminter processes with
leader election answer nats-server's auth callout (only the leader does); after `kill -9` of
the leader a nodeagent still connects once the standby has taken the Lease."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import nats
import nats.errors
from nats.aio.client import Client

from tailwire.services.keyminter import buscredentials
from tailwire.shared import permissions
from tailwire.testing import kubeapi, natsserver
from tests.ha import support

NAMESPACE = "tailwire-system"
LEASE = "tailwire-keyminter"
PASSWORDS = {"watcher": "w", "keyminter": "k", "renderer": "r", "dnsupdater": "d"}


async def _connects(url: str, token: str) -> bool:
    client = Client()
    try:
        await client.connect(
            url, token=token, allow_reconnect=False, max_reconnect_attempts=0, connect_timeout=5
        )
    except (nats.errors.Error, OSError):
        return False
    finally:
        await client.close()
    return True


def _holder(api: kubeapi.KubeAPI) -> str:
    lease = api.get("leases.coordination.k8s.io", name=LEASE, namespace=NAMESPACE)
    return str((lease or {}).get("spec", {}).get("holderIdentity") or "")


async def test_a_nodeagent_connects_after_the_answering_keyminter_is_killed(
    kube_emulator: kubeapi.KubeAPI, tmp_path: Path
) -> None:
    kube_emulator.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    seed, public = buscredentials.new_issuer()
    port = natsserver.free_port()
    config = permissions.render_nats_config(
        passwords=PASSWORDS,
        listen=f"127.0.0.1:{port}",
        store_dir=str(tmp_path / "js"),
        auth_callout_issuer=public,
    )
    server = natsserver.NatsServer(store_dir=tmp_path / "nats", port=port, config_text=config)
    server.start()
    # The streams the keyminters wait for, declared by their owner as the renderer would.
    await natsserver.declare_as_owner(server.url, password="r")
    token = kube_emulator.issue_token(
        namespace=NAMESPACE,
        service_account="tailwire-nodeagent",
        audiences=("tailwire-nats",),
        node="node-a",
    )
    env = {
        "TAILWIRE_NATS_USER": "keyminter",
        "TAILWIRE_NATS_PASSWORD": "k",
        "TAILWIRE_BUS_AUTH_ISSUER_SEED": seed,
    }
    try:
        with support.elected_pair(
            "keyminter",
            nats_url=server.url,
            kubeconfig=kube_emulator.kubeconfig_path,
            log_dir=tmp_path,
            env=env,
        ) as pair:
            processes, ports, logs = pair.processes, pair.ports, pair.logs
            await support.eventually(
                lambda: _holder(kube_emulator) in ports, within=30, what="a leader"
            )
            await support.eventually(
                lambda: _connects(server.url, token), within=30, what="a granted connection"
            )
            leader = _holder(kube_emulator)
            standby = next(i for i in ports if i != leader)

            processes[leader].send_signal(signal.SIGKILL)
            await support.eventually(
                lambda: processes[leader].poll() is not None, within=10, what="kill"
            )
            killed_at = time.monotonic()
            try:
                await support.eventually(
                    lambda: _holder(kube_emulator) == standby, within=30, what="takeover"
                )
                await support.eventually(
                    lambda: _connects(server.url, token), within=30, what="a connection after"
                )
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n{logs()}") from None
            print(f"nodeagent connects again {time.monotonic() - killed_at:.2f} s after kill -9")
    finally:
        server.stop()
