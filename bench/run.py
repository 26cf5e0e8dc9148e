"""Run every benchmark (`bench/bench_*.py`), each as its own process with a time limit, and
write one JSON document: the machine (nproc, free -h, lscpu, kernel), then per benchmark
its JSON output, its wall time and the load average before and after it. What `make bench`
runs; `--quick` runs each benchmark's small smoke mode. Must not measure anything itself.

Usage: .venv/bin/python bench/run.py [--quick] [--only NAME,...] [--out FILE]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
# Seconds each benchmark may take at full size (quick runs get a fifth, at least 60 s).
LIMITS = {
    "nodeagent": 240,
    "dnsupdater": 90,
    "renderer": 120,
    "renderer_ingress": 120,
    "keyminter": 180,
    "watcher": 360,
    "scale": 600,
    "pipeline": 420,
}


def command(args: list[str]) -> str:
    try:
        done = subprocess.run(args, capture_output=True, text=True, check=False, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"unavailable: {error}"
    return done.stdout.strip()


def machine() -> dict[str, Any]:
    lscpu = command(["lscpu"])
    keep = ("Architecture", "CPU(s)", "Model name", "Thread(s) per core", "Hypervisor vendor")
    return {
        "nproc": int(command(["nproc"]) or 0),
        "free_h": command(["free", "-h"]),
        "lscpu": {
            key.strip(): value.strip()
            for key, _, value in (line.partition(":") for line in lscpu.splitlines())
            if key.strip() in keep or key.strip().startswith(("L2", "L3", "BogoMIPS"))
        },
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "uid": os.getuid(),
        "uptime": command(["uptime"]),
    }


def run_one(name: str, *, quick: bool) -> dict[str, Any]:
    limit = max(60, LIMITS.get(name, 300) // 5) if quick else LIMITS.get(name, 300)
    load_before = round(os.getloadavg()[0], 2)
    started = time.perf_counter()
    args = [sys.executable, str(HERE / f"bench_{name}.py"), *(["--quick"] if quick else [])]
    entry: dict[str, Any] = {"load_average_1m_before": load_before}
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=limit, check=False)
    except subprocess.TimeoutExpired:
        entry["error"] = f"timed out after {limit} s"
    else:
        if done.returncode != 0:
            entry["error"] = f"exit {done.returncode}: {done.stderr.strip()[-2000:]}"
        else:
            try:
                entry["result"] = json.loads(done.stdout)
            except json.JSONDecodeError as error:
                entry["error"] = f"output is not JSON ({error}): {done.stdout[:500]}"
    entry["wall_seconds"] = round(time.perf_counter() - started, 1)
    entry["load_average_1m_after"] = round(os.getloadavg()[0], 2)
    return entry


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", default="", help="comma-separated names (bench_NAME.py)")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--merge", action="store_true", help="keep the other benchmarks already in --out"
    )
    args = parser.parse_args()
    names = sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))
    if args.only:
        names = [n for n in names if n in args.only.split(",")]
    document: dict[str, Any] = {
        "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "machine": machine(),
        "benchmarks": {},
    }
    if args.merge and args.out is not None and args.out.exists():
        previous = json.loads(args.out.read_text())
        document["benchmarks"] = previous.get("benchmarks", {})
        document["started"] = previous.get("started")
    rerun_started = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    if args.merge:
        document["rerun"] = {"benchmarks": names, "started": rerun_started}
    for name in names:
        print(f"bench: {name} ...", file=sys.stderr, flush=True)
        entry = run_one(name, quick=args.quick)
        document["benchmarks"][name] = entry
        status = entry.get("error", "ok")
        print(f"bench: {name} {entry['wall_seconds']} s: {status[:200]}", file=sys.stderr)
    document["finished"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    text = json.dumps(document, indent=2)
    if args.out is not None:
        args.out.write_text(text + "\n")
    print(text)
    return 1 if any("error" in e for e in document["benchmarks"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
