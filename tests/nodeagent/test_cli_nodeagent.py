"""`tailwire run nodeagent`: a clear error without a node name, and without root it runs and
reports the permission error in its acks."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from nats.aio.client import Client

from tailwire.shared import ids, subjects
from tailwire.shared.events import nodes
from tailwire.testing import natsserver, netns


def test_without_a_node_name_it_exits_with_a_clear_error() -> None:
    env = {k: v for k, v in os.environ.items() if k != "TAILWIRE_NODE_NAME"}
    env["TAILWIRE_TRACES_EXPORTER"] = "none"
    result = subprocess.run(
        [sys.executable, "-m", "tailwire.cli", "run", "nodeagent"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "--node NAME" in result.stderr
    assert "TAILWIRE_NODE_NAME" in result.stderr
    assert "Traceback" not in result.stderr


def test_node_option_is_for_the_nodeagent_only() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tailwire.cli", "run", "watcher", "--node", "n1"],
        env={**os.environ, "TAILWIRE_TRACES_EXPORTER": "none"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "nodeagent only" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.root
async def test_without_root_it_runs_and_acks_the_permission_error(
    nats_server: natsserver.NatsServer,
    nats_client: Client,
    netns_factory: netns.NetnsFactory,
    short_root: Path,
) -> None:
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is needed to drop root")
    gateway = netns_factory.create()
    plan = nodes.NodePlan(
        node=ids.NodeName("n1"),
        generation=1,
        gateways=(
            nodes.GatewayAssignment(group=ids.GroupName("g"), netns=gateway, fwmark=1, table=100),
        ),
    )
    js = nats_client.jetstream()
    await js.publish(subjects.node_plan("n1"), plan.to_bytes())
    acks = await js.subscribe(subjects.node_ack("n1"), ordered_consumer=True)
    os.chmod(short_root, 0o777)  # the dropped user writes config files there
    env = {
        **os.environ,
        "TAILWIRE_NATS_URL": nats_server.url,
        "TAILWIRE_TRACES_EXPORTER": "none",
        "TAILWIRE_GATEWAY_STATE_ROOT": str(short_root),
        "HOME": str(short_root),
    }
    process = subprocess.Popen(
        [
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            sys.executable,
            "-m",
            "tailwire.cli",
            "run",
            "nodeagent",
            "--node",
            "n1",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        ack = nodes.NodeAck.model_validate_json((await acks.next_msg(timeout=30)).data)
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=20)
    assert [(g.ok, g.error) for g in ack.gateways] == [
        (
            False,
            f"cannot enter netns /run/netns/{gateway}: Operation not permitted "
            "(needs root: CAP_SYS_ADMIN)",
        )
    ]
    assert "is not root" in stderr
    assert "Traceback" not in stderr
    assert process.returncode == 0
