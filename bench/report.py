# ruff: noqa: E501 (table rows read best one per line)
"""Turn the JSON document of `bench/run.py` into the measured part of docs/benchmarks.md:
the machine, then one table per question (pod to egress-ready, throughput, nodeagent, DNS,
scale, the per-service figures), with the ratios against the baselines of the same run and
the load average next to each figure. Rewrites only what lies between the markers
`<!-- BEGIN measured -->` and `<!-- END measured -->` of the target file. Must not measure.

Usage: .venv/bin/python bench/report.py RESULTS.json [--update docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

BEGIN, END = "<!-- BEGIN measured -->", "<!-- END measured -->"


def get(document: Any, *path: str | int) -> Any:
    for key in path:
        in_list = isinstance(document, list) and isinstance(key, int) and key < len(document)
        if not (in_list or (isinstance(document, dict) and key in document)):
            return None
        document = document[key]
    return document


def fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        text = f"{value:,.3f}".rstrip("0").rstrip(".") if abs(value) < 10 else f"{value:,.1f}"
    elif isinstance(value, int):
        text = f"{value:,}"
    else:
        text = str(value)
    return text + unit


def table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += [
        "| " + " | ".join(fmt(c) if not isinstance(c, str) else c for c in r) + " |" for r in rows
    ]
    return [*lines, ""]


def load_of(entry: dict[str, Any]) -> str:
    return f"load {fmt(entry.get('load_average_1m_before'))} -> {fmt(entry.get('load_average_1m_after'))}"


def machine(doc: dict[str, Any]) -> list[str]:
    m = doc.get("machine", {})
    cpu = m.get("lscpu", {})
    lines = [
        f"Run started {doc.get('started')}, finished {doc.get('finished')}"
        + (" (quick mode: smoke sizes, not figures)" if doc.get("quick") else "")
        + ".",
        "",
        *(
            [
                f"Re-run afterwards, into the same document: {', '.join(doc['rerun']['benchmarks'])} "
                f"(started {doc['rerun']['started']}; the machine lines below are from that re-run).",
                "",
            ]
            if doc.get("rerun")
            else []
        ),
        f"- CPUs (`nproc`): {m.get('nproc')}; `lscpu`: "
        + "; ".join(f"{k}: {v}" for k, v in cpu.items()),
        f"- kernel {m.get('kernel')}, Python {m.get('python')}, "
        f"{'root (real netns)' if m.get('uid') == 0 else 'not root (no netns)'}",
        f"- `uptime` at the start: `{m.get('uptime')}`",
        "- `free -h`:",
        "",
        "```",
        *str(m.get("free_h", "")).splitlines(),
        "```",
        "",
    ]
    return lines


def pipeline(doc: dict[str, Any]) -> list[str]:
    e = get(doc, "benchmarks", "pipeline") or {}
    r = e.get("result")
    if not r:
        return [
            "### Pod to egress-ready",
            "",
            f"Not measured: {e.get('error') or 'not in this run'}",
            "",
        ]
    b, s = r["burst"], r["single"]
    a1, ab = get(r, "anchor_poll_3s", "single") or {}, get(r, "anchor_poll_3s", "burst") or {}
    rows = [
        [
            "tailwire, 1 pod at a time",
            s.get("count"),
            fmt(s.get("p50_s"), " s"),
            fmt(s.get("p99_s"), " s"),
            fmt(s.get("max_s"), " s"),
            "-",
            fmt(s.get("load_average_1m")),
        ],
        [
            "anchor (LIST every 3 s), 1 pod at a time",
            a1.get("count"),
            fmt(a1.get("p50_s"), " s"),
            fmt(a1.get("p99_s"), " s"),
            fmt(a1.get("max_s"), " s"),
            "-",
            "-",
        ],
        [
            f"tailwire, burst of {b['pods']}",
            b["acked_ok"],
            fmt(get(b, "latency", "p50_s"), " s"),
            fmt(get(b, "latency", "p99_s"), " s"),
            fmt(get(b, "latency", "max_s"), " s"),
            fmt(b.get("pods_per_second")),
            " -> ".join(fmt(x) for x in b["load_average_1m"]),
        ],
        [
            f"anchor (LIST every 3 s), burst of {ab.get('pods')}",
            ab.get("stitched_ok"),
            fmt(get(ab, "latency", "p50_s"), " s"),
            fmt(get(ab, "latency", "p99_s"), " s"),
            fmt(get(ab, "latency", "max_s"), " s"),
            fmt(ab.get("pods_per_second")),
            " -> ".join(fmt(x) for x in ab.get("load_average_1m", [])),
        ],
    ]
    ratios = r.get("ratios_anchor_to_tailwire", {})
    period = fmt(get(r, "anchor_poll_3s", "poll_period_s"))
    for row in rows:
        row[0] = row[0].replace("every 3 s", f"every {period} s")

    def said(kind: str) -> str:
        q = ratios.get(kind, {})
        return f"p50 x{fmt(q.get('p50_s'))}, p99 x{fmt(q.get('p99_s'))}, max x{fmt(q.get('max_s'))}"

    return [
        "### Pod to egress-ready (creation in the API -> nodeagent ack, routes live)",
        "",
        f"Real netns: {r.get('netns')}. Whole run {fmt(e.get('wall_seconds'), ' s')}, {load_of(e)}.",
        "",
        *table(["path", "pods ok", "p50", "p99", "max", "pods/s", "load 1m"], rows),
        f"Anchor / tailwire (> 1: tailwire sooner): one pod at a time {said('single')}; burst {said('burst')}.",
        *paced_lines(r.get("paced") or []),
        f"During the burst the nodeagent published {fmt(b.get('acks_published'))} acks (one per plan generation it applied); "
        "CPU seconds of each service process during the burst: "
        + ", ".join(f"{k} {fmt(v)}" for k, v in b.get("service_cpu_seconds", {}).items())
        + ".",
        "",
    ]


def paced_lines(paced: list[dict[str, Any]]) -> list[str]:
    if not paced:
        return []
    rows = [
        [
            fmt(p.get("rate_offered_per_second"), "/s"),
            p.get("pods"),
            p.get("acked_ok"),
            fmt(get(p, "latency", "p50_s"), " s"),
            fmt(get(p, "latency", "p99_s"), " s"),
            fmt(get(p, "latency", "max_s"), " s"),
            fmt(p.get("rate_achieved_per_second"), "/s"),
            p.get("acks_published"),
            fmt(get(p, "service_cpu_seconds", "nodeagent/node-a")),
            " -> ".join(fmt(x) for x in p.get("load_average_1m", [])),
        ]
        for p in paced
    ]
    return [
        "",
        "Paced creations (after the phases above, on top of the members already on the node):",
        "",
        *table(
            [
                "offered",
                "pods",
                "ok",
                "p50",
                "p99",
                "max",
                "achieved",
                "acks",
                "nodeagent CPU s",
                "load 1m",
            ],
            rows,
        ),
    ]


def throughput(doc: dict[str, Any]) -> list[str]:
    p = get(doc, "benchmarks", "pipeline", "result", "burst") or {}
    w = get(doc, "benchmarks", "watcher", "result") or {}
    s = get(doc, "benchmarks", "scale", "result", "sizes", -1) or {}
    big = get(doc, "benchmarks", "scale", "result", "sizes")
    big = big[-1] if big else {}
    rows = [
        ["whole pipeline, new member pods -> ack ok (burst above)", fmt(p.get("pods_per_second"))],
        *(
            [
                f"whole pipeline, paced at {q.get('rate_offered_per_second'):g}/s (achieved)",
                fmt(q.get("rate_achieved_per_second")),
            ]
            for q in (get(doc, "benchmarks", "pipeline", "result", "paced") or [])
        ),
        [
            "watcher alone, label changes -> JetStream (10,000-pod burst)",
            fmt(get(w, "burst_modify", "changes_per_second")),
        ],
        [
            "watcher alone, initial sync snapshots/s",
            fmt(get(w, "initial_sync", "snapshots_per_second")),
        ],
    ]
    plans = get(big, "seconds_from_watcher_start", "plans_complete")
    if plans:
        rows.append(
            [
                f"cold start, {fmt(big.get('pods'))} pods -> all node plans complete",
                fmt(round(big["pods"] / plans, 1)),
            ]
        )
    del s
    return [
        "### Throughput (pod changes per second, end to end)",
        "",
        *table(["what", "changes/s"], rows),
    ]


def nodeagent(doc: dict[str, Any]) -> list[str]:
    e = get(doc, "benchmarks", "nodeagent") or {}
    r = e.get("result")
    if not r or "skipped" in r:
        return ["### nodeagent", "", f"Not measured: {e.get('error') or get(r, 'skipped')}", ""]
    b = r["baseline_ip_loop"]
    rows = [
        [
            "stitch (empty -> N members)",
            fmt(get(r, "stitch", "seconds"), " s"),
            fmt(get(r, "stitch", "per_pod_ms_mean"), " ms"),
            fmt(get(r, "stitch", "cpu_seconds"), " s"),
            fmt(get(b, "stitch", "seconds"), " s"),
            fmt(get(b, "stitch", "per_pod_ms_mean"), " ms"),
            fmt(get(b, "stitch", "cpu_seconds_children"), " s"),
            f"x{fmt(get(r, 'ratios', 'stitch_wall'))}",
        ],
        [
            "re-apply, nothing changed",
            fmt(get(r, "reapply_unchanged", "seconds"), " s"),
            fmt(get(r, "reapply_unchanged", "per_pod_ms_mean"), " ms"),
            fmt(get(r, "reapply_unchanged", "cpu_seconds"), " s"),
            fmt(get(b, "reapply_rerun_script", "seconds"), " s"),
            fmt(get(b, "reapply_rerun_script", "per_pod_ms_mean"), " ms"),
            fmt(get(b, "reapply_rerun_script", "cpu_seconds_children"), " s"),
            f"x{fmt(get(r, 'ratios', 'reapply_wall'))}",
        ],
    ]
    return [
        f"### nodeagent: {r.get('pods')} pods on one node (real netns)",
        "",
        f"{load_of(e)}; netlink writes: stitch {fmt(get(r, 'stitch', 'netlink_writes'))}, "
        f"re-apply {fmt(get(r, 'reapply_unchanged', 'netlink_writes'))}; the `ip` loop ran "
        f"{fmt(get(b, 'stitch', 'commands'))} commands per pass "
        f"({fmt(get(b, 'stitch', 'failed_commands'))} failed when stitching, "
        f"{fmt(get(b, 'reapply_rerun_script', 'failed_commands'))} failed on the re-run: "
        "objects that exist). Adopt after a restart: "
        f"{fmt(get(r, 'adopt_after_restart', 'seconds'), ' s')}, "
        f"{fmt(get(r, 'adopt_after_restart', 'netlink_writes'))} writes.",
        "",
        *table(
            [
                "phase",
                "tailwire wall",
                "per pod",
                "CPU",
                "ip loop wall",
                "per pod",
                "CPU (ip processes)",
                "ip loop / tailwire",
            ],
            rows,
        ),
    ]


def dns(doc: dict[str, Any]) -> list[str]:
    e = get(doc, "benchmarks", "dnsupdater") or {}
    r = e.get("result")
    if not r:
        return ["### DNS", "", f"Not measured: {e.get('error') or 'not in this run'}", ""]
    ip = r["ip_change_to_bind_answer"]
    rows = [
        [
            "tailwire: event -> BIND answers the new IP",
            ip.get("n"),
            fmt(ip["p50_ms"] / 1000, " s"),
            fmt(ip["p95_ms"] / 1000, " s"),
            fmt(ip["max_ms"] / 1000, " s"),
            "-",
        ]
    ]
    for key, v in r.get("cronjob_expected_latency_s", {}).items():
        rows.append(
            [
                f"CronJob {key.replace('every_', 'every ')} (expected)",
                "-",
                fmt(v["mean"], " s (mean)"),
                "-",
                fmt(v["worst"], " s"),
                f"x{fmt(get(r, 'ratios_cron_mean_to_p50', key))}",
            ]
        )
    return [
        "### DNS: gateway IP change -> new answer",
        "",
        f"{load_of(e)}. The CronJob's body (AXFR + diff + UPDATE) took "
        f"{fmt(r.get('cron_body_ms_median'), ' ms')} here; its latency is its schedule "
        f"(uniform wait) + a Job pod start of {fmt(get(r, 'assumptions', 'job_pod_start_s'), ' s')} "
        f"(assumed) + the body. {fmt(get(r, 'route_burst', 'routes'))} new routes resolve in "
        f"{fmt(get(r, 'route_burst', 'seconds_until_all_resolve'), ' s')}.",
        "",
        *table(["path", "n", "p50", "p95", "max", "CronJob mean / tailwire p50"], rows),
    ]


def scale(doc: dict[str, Any]) -> list[str]:
    e = get(doc, "benchmarks", "scale") or {}
    r = e.get("result")
    if not r:
        return ["### Scale", "", f"Not measured: {e.get('error') or 'not in this run'}", ""]
    sizes = r["sizes"]
    names = ["watcher", "renderer", "keyminter", "dnsupdater", "nodeagent"]
    rows = []
    for s in sizes:
        procs = s.get("processes", {})
        rows.append(
            [f"{fmt(s['pods'])} pods, {s['groups']} groups, {s['nodes']} nodes"]
            + [
                f"{fmt(get(procs, n, 'vmhwm_mib'))} / {fmt(get(procs, n, 'cpu_seconds'))}"
                for n in names
            ]
            + [f"{fmt(s.get('load_average_1m_start'))} -> {fmt(s.get('load_average_1m_end'))}"]
        )
    idle = sizes[0].get("idle_before_sync", {}) if sizes else {}
    rows.append(
        ["idle (started, before any data)"]
        + [fmt(get(idle, n, "vmhwm_mib")) if n in idle else "-" for n in names]
        + ["-"]
    )
    times = []
    for s in sizes:
        t = s.get("seconds_from_watcher_start", {})
        times.append(
            [
                fmt(s["pods"]),
                fmt(s.get("emulator_create_seconds"), " s"),
                fmt(t.get("pods_mirrored"), " s"),
                fmt(t.get("plans_complete"), " s"),
                fmt(t.get("keys_answered"), " s"),
                fmt(t.get("node00_acked"), " s"),
                f"{fmt(get(s, 'reached_at_end', 'plan_messages'))} "
                f"({fmt(get(s, 'reached_at_end', 'plan_mib_published'), ' MiB')})",
            ]
        )
    g = r.get("growth", {})
    growth = (
        [
            f"From {fmt(sizes[0]['pods'])} to {fmt(sizes[-1]['pods'])} pods (x{fmt(g.get('pods'))}): "
            "time x "
            + ", ".join(f"{k} {fmt(v)}" for k, v in g.get("time", {}).items())
            + "; peak RSS x "
            + ", ".join(f"{k} {fmt(v)}" for k, v in g.get("peak_rss", {}).items())
            + "; CPU seconds x "
            + ", ".join(f"{k} {fmt(v)}" for k, v in g.get("cpu_seconds", {}).items())
            + ".",
            "",
        ]
        if g
        else []
    )
    return [
        "### Scale: memory and time per service process",
        "",
        f"Whole benchmark {fmt(e.get('wall_seconds'), ' s')}, {load_of(e)}. Each cell: peak "
        "resident memory (VmHWM, MiB) / CPU seconds of the process at the end.",
        "",
        *table(["cluster", *names, "load 1m"], rows),
        "Seconds from the watcher's start (the cluster already in the API, the other services "
        "ready):",
        "",
        *table(
            [
                "pods",
                "API objects created in",
                "all pods on the bus",
                "all node plans complete",
                "100 key requests answered",
                "node-00 acked",
                "plan messages published (size)",
            ],
            times,
        ),
        *growth,
    ]


def services(doc: dict[str, Any]) -> list[str]:
    b = doc.get("benchmarks", {})
    w = get(b, "watcher", "result") or {}
    k = get(b, "keyminter", "result") or {}
    r = get(b, "renderer", "result") or {}
    i = get(b, "renderer_ingress", "result") or {}
    rows = [
        [
            "watcher",
            f"{fmt(w.get('pods'))} pods: initial sync {fmt(get(w, 'initial_sync', 'snapshots_per_second'))}/s, "
            f"burst {fmt(get(w, 'burst_modify', 'changes_per_second'))} changes/s, paced p50/p99 "
            f"{fmt(get(w, 'paced_modify', 'latency_ms_p50'))}/{fmt(get(w, 'paced_modify', 'latency_ms_p99'))} ms, "
            f"restart republishes {fmt(get(w, 'restart', 'published_besides_one_new_pod'))}",
            load_of(get(b, "watcher") or {}),
        ],
        [
            "keyminter",
            f"mint p50 {fmt(get(k, 'mint_sequential', 'p50_ms'))} ms, reuse p50 "
            f"{fmt(get(k, 'reuse', 'p50_ms'))} ms, {fmt(get(k, 'mint_concurrent', 'mints_per_s'))} mints/s "
            f"concurrent, stampede of {fmt(get(k, 'stampede', 'requests'))} -> "
            f"{fmt(get(k, 'stampede', 'keys_minted'))} key, bus round trip p50 "
            f"{fmt(get(k, 'bus_round_trip', 'p50_ms'))} ms",
            load_of(get(b, "keyminter") or {}),
        ],
        [
            "renderer (egress)",
            f"{fmt(r.get('pods'))} pods / {fmt(r.get('groups'))} groups / "
            f"{fmt(r.get('nodes'))} nodes: full render {fmt(r.get('render_seconds_median'))} s, one pod "
            f"joins {fmt(r.get('one_pod_joins_render_and_diff_seconds_median'))} s -> "
            f"{fmt(r.get('plans_published_after_one_pod_joins'))} plan, plan "
            f"{fmt(r.get('plan_bytes_mean'))} B",
            load_of(get(b, "renderer") or {}),
        ],
        [
            "renderer (ingress)",
            f"{fmt(i.get('services'))} Services x {fmt(i.get('tailscale_gateways'))} "
            f"TailscaleGateways: render {fmt(i.get('render_seconds_median'))} s, "
            f"{fmt(i.get('manifests'))} manifests",
            load_of(get(b, "renderer_ingress") or {}),
        ],
    ]
    return [
        "### Per-service figures (details in docs/benchmarks/<service>.md)",
        "",
        *table(["service", "figures", "load 1m"], rows),
    ]


def render(doc: dict[str, Any]) -> str:
    lines = [BEGIN, "", "## Measured", "", "### Machine", "", *machine(doc)]
    for part in (pipeline, throughput, nodeagent, dns, scale, services):
        lines += part(doc)
    errors = {n: e["error"] for n, e in doc.get("benchmarks", {}).items() if "error" in e}
    if errors:
        lines += [
            "### Failed in this run",
            "",
            *(f"- {n}: {e[:300]}" for n, e in errors.items()),
            "",
        ]
    walls = ", ".join(
        f"{n} {fmt(e.get('wall_seconds'), ' s')}" for n, e in doc.get("benchmarks", {}).items()
    )
    lines += [f"Wall time per benchmark: {walls}.", "", END]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--update", type=Path, default=None)
    args = parser.parse_args()
    document = json.loads(args.results.read_text())
    text = render(document)
    if args.update is not None and document.get("quick"):
        print(f"a quick run holds no figures: {args.update} left as it is", file=sys.stderr)
        args.update = None
    if args.update is None:
        sys.stdout.write(text)
        return 0
    current = args.update.read_text() if args.update.exists() else f"{BEGIN}\n{END}\n"
    if BEGIN not in current or END not in current:
        current += f"\n{BEGIN}\n{END}\n"
    head, _, rest = current.partition(BEGIN)
    _, _, tail = rest.partition(END)
    args.update.write_text(head + text.rstrip("\n") + tail)
    return 0


if __name__ == "__main__":
    sys.exit(main())
