"""`tailwire dev` runs the whole system with its live table until Ctrl-C, then stops
everything: exit 0, and no process, netns or temp dir is left."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tailwire.testing import netns
from tests.e2e import test_demo_runs_clean


def _reader(stream: object, lines: queue.Queue[str]) -> None:
    for line in iter(stream.readline, ""):  # type: ignore[attr-defined]
        lines.put(line)


def _wait_for(lines: queue.Queue[str], seen: list[str], pattern: str, *, within: float) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.2)
        except queue.Empty:
            continue
        seen.append(line)
        if re.search(pattern, line):
            return
    raise AssertionError(f"no line matching {pattern!r} within {within} s:\n{''.join(seen)}")


@pytest.mark.timeout(90)
def test_dev_shows_the_table_and_stops_cleanly_on_ctrl_c() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TAILWIRE_", "OTEL_"))}
    env["COLUMNS"] = "200"
    process = subprocess.Popen(
        [sys.executable, "-m", "tailwire.cli", "dev", "--nodes", "node-a"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )
    lines: queue.Queue[str] = queue.Queue()
    seen: list[str] = []
    reader = threading.Thread(target=_reader, args=(process.stdout, lines), daemon=True)
    reader.start()
    try:
        _wait_for(lines, seen, r"live table running", within=60)
        _wait_for(lines, seen, r"egressgroup/payments: Ready", within=30)
        # Ctrl-C at a terminal: SIGINT to the whole foreground process group.
        os.killpg(process.pid, signal.SIGINT)
        code = process.wait(timeout=40)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    reader.join(timeout=10)  # EOF once the process is gone
    assert process.stdout is not None
    process.stdout.close()
    while not lines.empty():
        seen.append(lines.get())
    out = "".join(seen)
    assert code == 0, out[-4000:]
    assert "groups (status summaries)" in out
    assert "LOCAL STAND-IN" in out
    assert "stopped cleanly" in out
    workdir = re.search(r"temp dir: (\S+)", out)
    assert workdir is not None
    assert not Path(workdir.group(1)).exists()
    assert test_demo_runs_clean.processes_mentioning(workdir.group(1)) == []
    created = re.search(r"network namespaces created: (.*)", out)
    assert created is not None
    names = set(created.group(1).split()) - {"none"}
    if netns.unavailable_reason() is None:
        assert names
        assert not names & set(netns.list_netns())
