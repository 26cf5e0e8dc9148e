"""`tailwire run nodeagent`: a clear error without a node name; `--dry-run` changes nothing."""

from __future__ import annotations

import os
import subprocess
import sys


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
