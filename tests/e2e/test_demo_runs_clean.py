"""`tailwire demo` as `make demo` runs it: exit 0, the pod-to-ack latency, the span tree, and
nothing left behind (no process, no netns, no temp dir); twice in a row."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tailwire.testing import netns


def processes_mentioning(text: str) -> list[int]:
    """Pids whose command line or environment mentions `text` (the demo's temp dir)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        for part in ("cmdline", "environ"):
            try:
                if text.encode() in (entry / part).read_bytes():
                    found.append(int(entry.name))
                    break
            except OSError:
                continue
    return found


def _run_demo() -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TAILWIRE_", "OTEL_"))}
    env["COLUMNS"] = "200"  # one span per line
    result = subprocess.run(
        [sys.executable, "-m", "tailwire.cli", "demo"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return result.stdout


def _check_output_and_cleanup(out: str) -> None:
    latencies = re.findall(r"time from pod creation to ack: (\d+) ms", out)
    assert latencies, out
    # The span tree: rooted at the watcher's publish, reaching all four services.
    tree = out[out.index("one change, one trace") :]
    for service in ("watcher", "renderer", "keyminter", "nodeagent"):
        assert f"{service} " in tree, service
    assert "└── watcher" in tree
    assert "all services stopped cleanly" in out
    workdir = re.search(r"temp dir: (\S+)", out)
    assert workdir is not None, out
    assert not Path(workdir.group(1)).exists()
    assert processes_mentioning(workdir.group(1)) == []
    created = re.search(r"network namespaces created: (.*)", out)
    assert created is not None
    names = set(created.group(1).split()) - {"none"}
    if netns.unavailable_reason() is None:
        assert names, "as root the demo uses real network namespaces"
        assert "reached" in out
        assert not names & set(netns.list_netns())


@pytest.mark.timeout(150)
def test_demo_twice_in_a_row_exits_0_and_leaves_nothing() -> None:
    for _ in range(2):
        _check_output_and_cleanup(_run_demo())
