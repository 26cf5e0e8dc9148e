"""Namespaces are uniquely named, listed while alive, and always removed afterwards."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tailwire.testing import netns

pytestmark = pytest.mark.root

REPO = Path(__file__).resolve().parents[2]


class BodyFailedError(Exception):
    """What a failing test body raises."""


def create_then_fail(created: list[str]) -> None:
    with netns.NetnsFactory() as factory:
        created.append(factory.create())
        raise BodyFailedError


def test_namespaces_are_unique_listed_and_removed(netns_factory: netns.NetnsFactory) -> None:
    names = [netns_factory.create() for _ in range(3)]
    assert len(set(names)) == 3
    assert all(name.startswith("tw-") and len(name) == len("tw-") + 8 for name in names)
    assert set(names) <= set(netns.list_netns())

    netns_factory.cleanup()
    assert not set(names) & set(netns.list_netns())
    assert netns_factory.names == frozenset()


def test_namespaces_go_even_when_the_body_raises(netns_factory: netns.NetnsFactory) -> None:
    created: list[str] = []
    with pytest.raises(BodyFailedError):
        create_then_fail(created)
    assert created
    assert created[0] not in netns.list_netns()


def test_processes_inside_are_stopped_so_the_namespace_really_goes(
    netns_factory: netns.NetnsFactory,
) -> None:
    name = netns_factory.create()
    sleeper = subprocess.Popen(["ip", "netns", "exec", name, "sleep", "30"])
    try:
        # `ip netns exec` needs a moment to enter the namespace before it shows up there.
        deadline = time.monotonic() + 5
        while not netns.run(["ip", "netns", "pids", name]).stdout.strip():
            assert time.monotonic() < deadline, "sleep never entered the namespace"
            time.sleep(0.01)
        netns_factory.cleanup()
        assert sleeper.wait(timeout=5) != 0
    finally:
        if sleeper.poll() is None:
            sleeper.kill()
            sleeper.wait()
    assert name not in netns.list_netns()


def test_foreign_namespaces_are_refused(netns_factory: netns.NetnsFactory) -> None:
    with pytest.raises(ValueError, match="not created"):
        netns_factory.run(["true"], netns="tw-notours")
    with pytest.raises(ValueError, match="not created"):
        netns.delete_netns("tw-notours")


def test_fixture_removes_namespaces_of_a_failing_test(
    netns_factory: netns.NetnsFactory, tmp_path: Path
) -> None:
    record = tmp_path / "created.txt"
    (tmp_path / "test_inner.py").write_text(
        textwrap.dedent(
            f"""
            from pathlib import Path
            from tests.fixtures.netns import netns_factory

            def test_fails(netns_factory):
                Path({str(record)!r}).write_text(netns_factory.create())
                raise AssertionError("the test body fails")
            """
        )
    )
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    inner = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
    assert inner.returncode == 1, inner.stdout + inner.stderr
    assert "1 failed" in inner.stdout
    created = record.read_text()
    assert created.startswith("tw-")
    assert created not in netns.list_netns()


def test_atexit_backstop_removes_what_a_process_left(netns_factory: netns.NetnsFactory) -> None:
    script = "from tailwire.testing import netns; print(netns.create_netns())"
    leaked = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=True
    ).stdout.strip()
    assert leaked.startswith("tw-")
    assert leaked not in netns.list_netns()
