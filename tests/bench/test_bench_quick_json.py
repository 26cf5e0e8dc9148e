"""Every benchmark runs in its quick mode and prints one JSON document with the keys the
report (docs/benchmarks.md, bench/report.py) reads. No timing is asserted: the figures are
for docs/benchmarks.md, not for the test suite."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tailwire.testing import netns

BENCH = Path(__file__).resolve().parents[2] / "bench"

EXPECTED: dict[str, set[str]] = {
    "watcher": {"pods", "initial_sync", "burst_modify", "paced_modify", "restart"},
    "keyminter": {"mint_sequential", "reuse", "mint_concurrent", "stampede", "bus_round_trip"},
    "renderer": {"pods", "groups", "nodes", "render_seconds_median", "plan_bytes_mean"},
    "renderer_ingress": {"services", "render_seconds_median", "manifests"},
    "dnsupdater": {
        "ip_change_to_bind_answer",
        "cronjob_expected_latency_s",
        "ratios_cron_mean_to_p50",
        "route_burst",
    },
    "nodeagent": {"stitch", "reapply_unchanged", "baseline_ip_loop", "ratios"},
    "scale": {"sizes", "growth"},
    "pipeline": {"single", "burst", "paced", "anchor_poll_3s", "ratios_anchor_to_tailwire"},
}


def run_quick(name: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, str(BENCH / f"bench_{name}.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=55,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    document = json.loads(done.stdout)
    assert isinstance(document, dict)
    return document


def test_every_benchmark_is_covered() -> None:
    names = {p.stem.removeprefix("bench_") for p in BENCH.glob("bench_*.py")}
    assert names == set(EXPECTED)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(set(EXPECTED) - {"scale"}))
def test_quick_run_prints_json_with_the_expected_keys(name: str) -> None:
    if name == "nodeagent" and (reason := netns.unavailable_reason()) is not None:
        document = run_quick(name)
        assert document.get("skipped") == reason
        return
    document = run_quick(name)
    missing = EXPECTED[name] - set(document)
    assert not missing, f"bench_{name}.py --quick lacks {sorted(missing)}"


@pytest.mark.slow
def test_scale_quick_reports_every_process() -> None:
    document = run_quick("scale")
    assert EXPECTED["scale"] <= set(document)
    sizes = document["sizes"]
    assert isinstance(sizes, list)
    assert len(sizes) == 2
    for size in sizes:
        assert set(size["processes"]) == {
            "watcher",
            "renderer",
            "keyminter",
            "dnsupdater",
            "nodeagent",
        }
        for name, figures in size["processes"].items():
            # A process that died reports its exit code and its log's tail instead.
            assert {"vmhwm_mib", "vmrss_mib", "cpu_seconds"} <= set(figures), (name, figures)
        assert set(size["seconds_from_watcher_start"]) == {
            "pods_mirrored",
            "plans_complete",
            "keys_answered",
            "node00_acked",
        }
