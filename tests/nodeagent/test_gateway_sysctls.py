"""Real netns: the gateway's sysctls are the gateway pod's to set (its privileged init
container); the nodeagent, which runs without privilege and so with a read-only /proc/sys,
only checks them and names a wrong one in the gateway's result. Configured to, it still
writes them (`TAILWIRE_WRITE_GATEWAY_SYSCTLS`)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from tailwire.shared import settings
from tests.nodeagent import conftest as nodeagent

pytestmark = pytest.mark.root


def sysctl(topology: nodeagent.Topology, key: str) -> str:
    return topology.factory.run(["sysctl", "-n", key], netns=topology.gateway).stdout.strip()


def set_sysctl(topology: nodeagent.Topology, key: str, value: str) -> None:
    topology.factory.run(["sysctl", "-qw", f"{key}={value}"], netns=topology.gateway)


async def test_forwarding_off_in_the_gateway_is_reported_by_name_and_not_written(
    topology: nodeagent.Topology, tmp_path: Path
) -> None:
    set_sysctl(topology, "net.ipv4.ip_forward", "0")
    pod = topology.pod(index=1)
    agent = nodeagent.make_agent(tmp_path)
    ack = await agent.apply_plan(
        nodeagent.plan(topology, nodeagent.member(uid="uid-a", pod=pod, index=1))
    )
    (gateway,) = ack.gateways
    assert not gateway.ok
    assert gateway.error is not None
    assert "net.ipv4.ip_forward is 0, not 1" in gateway.error
    assert "init container" in gateway.error
    # The other three are right: only the wrong one is named.
    assert "rp_filter" not in gateway.error
    assert "net.ipv6.conf.all.forwarding" not in gateway.error
    assert sysctl(topology, "net.ipv4.ip_forward") == "0"
    assert agent.needs_retry

    # Once the pod's init container (here: the test) has set it, the retry is clean.
    set_sysctl(topology, "net.ipv4.ip_forward", "1")
    again = await agent.apply_plan(
        nodeagent.plan(topology, nodeagent.member(uid="uid-a", pod=pod, index=1), generation=2)
    )
    assert [(g.ok, g.error) for g in again.gateways] == [(True, None)]
    assert topology.factory.ping(netns=pod, address=topology.peer.peer_ipv4)


async def test_every_wrong_sysctl_is_named_and_a_dry_run_prints_no_write(
    topology: nodeagent.Topology, tmp_path: Path
) -> None:
    set_sysctl(topology, "net.ipv6.conf.all.forwarding", "0")
    set_sysctl(topology, "net.ipv4.conf.all.rp_filter", "1")
    out = io.StringIO()
    agent = nodeagent.make_agent(tmp_path, dry_run=True)
    agent.out = out
    ack = await agent.apply_plan(nodeagent.plan(topology))
    (gateway,) = ack.gateways
    assert gateway.error is not None
    assert "net.ipv6.conf.all.forwarding is 0, not 1" in gateway.error
    assert "net.ipv4.conf.all.rp_filter is 1, not 0" in gateway.error
    assert "sysctl -w" not in out.getvalue()
    assert sysctl(topology, "net.ipv4.conf.all.rp_filter") == "1"


async def test_an_agent_configured_to_write_the_sysctls_writes_them(
    topology: nodeagent.Topology, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_sysctl(topology, "net.ipv4.ip_forward", "0")
    set_sysctl(topology, "net.ipv4.conf.default.rp_filter", "2")
    monkeypatch.setenv("TAILWIRE_WRITE_GATEWAY_SYSCTLS", "true")
    assert settings.NodeSettings().write_gateway_sysctls
    agent = nodeagent.make_agent(tmp_path, write_sysctls=True)
    ack = await agent.apply_plan(nodeagent.plan(topology))
    assert [(g.ok, g.error) for g in ack.gateways] == [(True, None)]
    assert sysctl(topology, "net.ipv4.ip_forward") == "1"
    assert sysctl(topology, "net.ipv4.conf.default.rp_filter") == "0"
