"""`tailwire validate`, `crds`, `version` as a user runs them: a real process, exit codes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TAILWIRE = [sys.executable, "-m", "tailwire.cli"]


def _run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*TAILWIRE, *args], input=stdin, capture_output=True, text=True, timeout=60
    )


def test_every_example_is_valid() -> None:
    result = _run("validate", "-f", *sorted(str(p) for p in EXAMPLES.glob("*.yaml")))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""


def test_invalid_input_exits_1_with_one_line_per_problem_and_no_traceback() -> None:
    manifest = (
        "apiVersion: tailscale.rajsingh.info/v1alpha1\nkind: EgressGroup\nmetadata: {name: bad}\n"
        "spec: {selector: {}, mode: subnet, routes: [10.0.0.0/33], exitNode: {nodeID: x}, bogus: 1}\n"
    )
    result = _run("validate", "-f", "-", stdin=manifest)
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        "EgressGroup/bad: spec.routes[0]: '10.0.0.0/33' has prefix length /33; at most /32",
        "EgressGroup/bad: spec.bogus: unknown field",
    ]
    assert "Traceback" not in result.stderr


def test_unreadable_file_and_broken_yaml_are_errors_not_tracebacks(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("spec: [\n")
    result = _run("validate", "-f", str(broken), "-f", str(tmp_path / "missing.yaml"))
    assert result.returncode == 1
    assert "broken.yaml: yaml (line 2, column 1)" in result.stdout
    assert "missing.yaml: cannot read" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_crds_check_passes_on_the_committed_files() -> None:
    result = _run("crds", "-o", str(EXAMPLES.parent / "deploy" / "crds"), "--check")
    assert result.returncode == 0, result.stdout


def test_version_prints_the_package_version() -> None:
    result = _run("version")
    assert result.returncode == 0
    assert result.stdout.strip() == "0.1.0"
