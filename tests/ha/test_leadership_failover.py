"""Two renderer processes on a real nats-server and the emulated Kubernetes API: one leads, the
other stands by (connected, ready, publishing nothing); `kill -9` of the leader hands the Lease
to the standby within seconds, and a change published after the kill still lands as a plan."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import nats.js.errors
from nats.aio.client import Client

from tailwire.shared import settings, subjects
from tailwire.shared.events import nodes
from tailwire.testing import kubeapi
from tests.renderer import helpers

NAMESPACE = "tailwire-system"
LEASE = "tailwire-renderer"
LEASE_SECONDS = 3.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def renderer(
    *, identity: str, port: int, nats_url: str, kubeconfig: Path, log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    env = {
        **os.environ,
        "TAILWIRE_NATS_URL": nats_url,
        "TAILWIRE_KUBECONFIG": str(kubeconfig),
        "KUBECONFIG": str(kubeconfig),
        "TAILWIRE_TRACES_EXPORTER": "none",
        "TAILWIRE_HEALTH_PORT": str(port),
        "TAILWIRE_LEADER_ELECTION": "true",
        "TAILWIRE_POD_NAME": identity,
        "TAILWIRE_LEASE_DURATION": str(LEASE_SECONDS),
        "TAILWIRE_LEASE_RENEW_DEADLINE": "2",
        "TAILWIRE_LEASE_RETRY_PERIOD": "0.5",
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "tailwire.cli", "run", "renderer"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


async def eventually(check: object, *, within: float, what: str) -> None:
    assert callable(check)
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out after {within} s waiting for {what}")


def holder(api: kubeapi.KubeAPI) -> str:
    lease = api.get("leases.coordination.k8s.io", name=LEASE, namespace=NAMESPACE)
    return str((lease or {}).get("spec", {}).get("holderIdentity") or "")


async def http_get(port: int, path: str) -> tuple[int, str]:
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{port}{path}") as response,
        ):
            return response.status, await response.text()
    except aiohttp.ClientError:
        return 0, ""


async def last_plan(nc: Client, node: str) -> nodes.NodePlan | None:
    try:
        msg = await nc.jetstream().get_last_msg("TAILWIRE_NODES", subjects.node_plan(node))
    except nats.js.errors.NotFoundError:
        return None
    assert msg.data is not None
    return nodes.NodePlan.model_validate_json(msg.data)


async def test_killed_leader_is_replaced_and_a_later_change_lands(
    kube_emulator: kubeapi.KubeAPI,
    bus_settings: settings.BusSettings,
    nats_client: Client,
    tmp_path: Path,
) -> None:
    kube_emulator.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    async with helpers.producer(bus_settings) as broker:
        await helpers.publish(
            broker,
            helpers.namespace("payments"),
            helpers.node("node-a"),
            helpers.node("node-b"),
            helpers.group("peers", helpers.PEERS_SPEC),
            helpers.pod("api-0", node_name="node-a"),
        )
        ports = {"renderer-a": free_port(), "renderer-b": free_port()}
        with contextlib.ExitStack() as stack:
            processes = {
                identity: stack.enter_context(
                    renderer(
                        identity=identity,
                        port=port,
                        nats_url=bus_settings.nats_url,
                        kubeconfig=kube_emulator.kubeconfig_path,
                        log=tmp_path / f"{identity}.log",
                    )
                )
                for identity, port in ports.items()
            }

            def logs() -> str:
                return "\n".join(
                    f"--- {i}\n{(tmp_path / f'{i}.log').read_text()[-3000:]}" for i in ports
                )

            await eventually(lambda: holder(kube_emulator) in ports, within=20, what="a leader")
            leader = holder(kube_emulator)
            standby = next(i for i in ports if i != leader)

            async def planned(node: str, pod: str) -> bool:
                plan = await last_plan(nats_client, node)
                return plan is not None and pod in {m.name for m in plan.members}

            await eventually(lambda: planned("node-a", "api-0"), within=20, what="first plan")

            # The standby is connected and ready, but does not lead.
            async def standby_ready() -> bool:
                return (await http_get(ports[standby], "/readyz"))[0] == 200

            await eventually(standby_ready, within=20, what="the standby's /readyz")
            _, leader_metrics = await http_get(ports[leader], "/metrics")
            assert 'tailwire_leadership_is_leader{lease="tailwire-renderer"} 1.0' in leader_metrics
            _, standby_metrics = await http_get(ports[standby], "/metrics")
            assert 'tailwire_leadership_is_leader{lease="tailwire-renderer"} 0.0' in (
                standby_metrics
            )
            # ...and has not subscribed: it received no message at all.
            assert "tailwire_renderer_received_messages_total{" in leader_metrics
            assert "tailwire_renderer_received_messages_total{" not in standby_metrics

            processes[leader].send_signal(signal.SIGKILL)
            await eventually(lambda: processes[leader].poll() is not None, within=10, what="kill")
            killed_at = time.monotonic()
            # A change after the kill: a pod on another node.
            await helpers.publish(broker, helpers.pod("api-1", node_name="node-b"))

            try:
                await eventually(
                    lambda: holder(kube_emulator) == standby, within=20, what="takeover"
                )
                took_over = time.monotonic() - killed_at
                await eventually(lambda: planned("node-b", "api-1"), within=20, what="new plan")
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n{logs()}") from None
            print(f"takeover after kill -9: {took_over:.2f} s")
            # Replaced within seconds: the lease duration plus retries (~3.5 s on an idle
            # machine); the bound is loose because this 2-core machine is shared by suites.
            assert took_over < LEASE_SECONDS + 10.0, took_over
            plan_a = await last_plan(nats_client, "node-a")
            assert plan_a is not None
            assert {m.name for m in plan_a.members} == {"api-0"}

            # A clean stop of the new leader releases the Lease at once.
            # (Waited for without blocking: the emulator answers from this event loop.)
            processes[standby].send_signal(signal.SIGTERM)
            await eventually(
                lambda: processes[standby].poll() is not None, within=20, what="clean stop"
            )
            assert processes[standby].returncode == 0, logs()
            assert holder(kube_emulator) == ""
