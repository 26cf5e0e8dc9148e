"""Gateway config hot reload against a fake tailscaled LocalAPI on a unix socket."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tailwire.services.nodeagent import reconciling
from tailwire.services.nodeagent.adapters import localapi as localapi_client
from tailwire.shared import errors, ids
from tailwire.shared.events import gateways
from tailwire.shared.k8s import names
from tailwire.testing import localapi
from tests.nodeagent import conftest as nodeagent


def config(*, generation: int, hostname: str) -> gateways.GatewayConfig:
    body = {"Version": "alpha0", "Hostname": hostname, "AuthKey": "file:/etc/tailwire/authkey"}
    return gateways.GatewayConfig(
        group=ids.GroupName(nodeagent.GROUP),
        tailnet="example.com",
        generation=generation,
        config=body,
        hash=gateways.config_hash(body),
    )


class FakeSleep:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def paths(agent: reconciling.Agent) -> tuple[Path, Path]:
    directory = agent.config_dir(config(generation=1, hostname="x"))
    return directory / names.GATEWAY_CONFIG_FILE, directory / names.GATEWAY_SOCKET_FILE


async def test_a_config_change_makes_exactly_one_reload(short_root: Path) -> None:
    agent = nodeagent.make_agent(short_root)
    config_file, socket = paths(agent)
    async with localapi.FakeLocalAPI(socket_path=socket, config_path=config_file) as api:
        first = config(generation=1, hostname="gw-a")
        assert await agent.apply_config(first) == 1
        assert await agent.apply_config(first) == 0  # redelivered: nothing to do
        assert api.calls == 1
        second = config(generation=2, hostname="gw-b")
        assert await agent.apply_config(second) == 1
        assert api.calls == 2
    assert [r.config for r in api.reloads] == [first.config, second.config]
    assert json.loads(config_file.read_text()) == second.config


async def test_reload_is_retried_until_tailscaled_reports_reloaded(short_root: Path) -> None:
    sleep = FakeSleep()
    agent = nodeagent.make_agent(short_root)
    agent.sleep = sleep
    config_file, socket = paths(agent)
    async with localapi.FakeLocalAPI(socket_path=socket, config_path=config_file) as api:
        api.fail_next(3)
        assert await agent.apply_config(config(generation=1, hostname="gw-a")) == 4
    assert [r.answered for r in api.reloads] == [False, False, False, True]
    assert sleep.delays == [0.5, 1.0, 2.0]


async def test_restarted_agent_with_current_file_does_not_reload(short_root: Path) -> None:
    first = config(generation=1, hostname="gw-a")
    config_file, socket = paths(nodeagent.make_agent(short_root))
    async with localapi.FakeLocalAPI(socket_path=socket, config_path=config_file) as api:
        await nodeagent.make_agent(short_root).apply_config(first)
        assert await nodeagent.make_agent(short_root).apply_config(first) == 0
        assert api.calls == 1


async def test_gateway_not_running_yet_gets_the_file_without_a_reload(short_root: Path) -> None:
    agent = nodeagent.make_agent(short_root)
    config_file, _ = paths(agent)
    assert await agent.apply_config(config(generation=1, hostname="gw-a")) == 0
    assert json.loads(config_file.read_text())["Hostname"] == "gw-a"


async def test_a_config_whose_hash_does_not_match_is_rejected(short_root: Path) -> None:
    bad = config(generation=1, hostname="gw-a").model_copy(update={"hash": "sha256:0"})
    with pytest.raises(errors.MessageRejected, match="hash"):
        await nodeagent.make_agent(short_root).apply_config(bad)


async def test_the_fake_refuses_what_tailscaled_refuses(short_root: Path) -> None:
    socket = short_root / "t.sock"
    async with localapi.FakeLocalAPI(socket_path=socket) as api:
        transport = httpx.AsyncHTTPTransport(uds=str(socket))
        async with httpx.AsyncClient(transport=transport) as client:
            wrong_host = await client.post(f"http://evil.example{localapi.RELOAD_PATH}")
            wrong_method = await client.get(f"http://local-tailscaled.sock{localapi.RELOAD_PATH}")
    assert (wrong_host.status_code, wrong_method.status_code) == (403, 405)
    assert api.calls == 0


async def test_a_socket_path_longer_than_af_unix_allows_is_still_reached(
    short_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deep = short_root / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    # The fake listens through a short relative path; the agent gets the long absolute one.
    monkeypatch.chdir(deep)
    async with localapi.FakeLocalAPI(socket_path=Path("s.sock")) as api:
        await localapi_client.reload_once(deep / "s.sock")
    assert len(str(deep / "s.sock")) > 108
    assert api.calls == 1
