"""Benchmark of the nodeagent's datapath: stitch N member pods on one node, re-apply the
unchanged plan, adopt after a restart, and remove them all. Prints JSON.

Real network namespaces (root): one gateway netns with a simulated tailnet peer behind
`tailscale0`, N pod netns, all created here and removed afterwards. Only namespaces this
process created are touched; no traffic leaves them.

Baseline, in the same run and on the same pod namespaces (after the agent removed its
work): the anchor's way, a plain loop of `ip` / `nft` commands, one process per change, doing
exactly the changes the agent makes (taken from the agent's own dry run against a second,
fresh gateway netns), then the same loop again as a re-apply (a script re-run: the existing
objects make those commands fail with "File exists", which such a script ignores).

Usage: `python bench/bench_nodeagent.py [--pods 250] [--quick]`.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import io
import json
import os
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tailwire.services.nodeagent import reconciling
from tailwire.services.renderer.egress import links, options
from tailwire.shared import ids
from tailwire.shared.events import nodes
from tailwire.testing import netns

# Link addresses as the renderer assigns them (slot = index).
LINKS = links.LinkRange(
    cidr_v4=options.Options().link_cidr_v4, cidr_v6=options.Options().link_cidr_v6
)


def member(*, index: int, pod: str) -> nodes.MemberAssignment:
    return nodes.MemberAssignment(
        pod_uid=ids.PodUID(f"bench-{index:04d}"),
        namespace="bench",
        name=f"pod-{index}",
        group=ids.GroupName("bench"),
        netns=pod,
        link=LINKS.addresses(index),
        routes=(nodes.CGNAT_V4, nodes.TAILNET_ULA_V6),
        exit_node=index % 2 == 0,
        carve_outs=("10.244.0.0/16", "10.96.0.0/12") if index % 2 == 0 else (),
    )


def plan(*, gateway: str, members: list[nodes.MemberAssignment], generation: int) -> nodes.NodePlan:
    return nodes.NodePlan(
        node=ids.NodeName("bench-node"),
        generation=generation,
        gateways=(
            nodes.GatewayAssignment(
                group=ids.GroupName("bench"), netns=gateway, fwmark=0x1E, table=1717
            ),
        ),
        members=tuple(members),
    )


def summary(ack: nodes.NodeAck, *, seconds: float) -> dict[str, float | int | None]:
    per_pod = [p.duration_ms for p in ack.pods]
    return {
        "seconds": round(seconds, 3),
        "netlink_writes": ack.netlink_writes,
        "failed_pods": sum(not p.ok for p in ack.pods),
        "pods_per_second": round(len(ack.pods) / seconds, 1) if ack.pods and seconds else None,
        "per_pod_ms_mean": round(statistics.fmean(per_pod), 3) if per_pod else None,
        "per_pod_ms_p50": round(statistics.median(per_pod), 3) if per_pod else None,
        "per_pod_ms_p95": round(statistics.quantiles(per_pod, n=20)[18], 3)
        if len(per_pod) >= 20
        else None,
    }


VETH = re.compile(
    r"ip -n (?P<ns>\S+) link add (?P<name>\S+) mtu (?P<mtu>\d+) up alias (?P<alias>'[^']*') "
    r"type veth peer name (?P<peer>\S+) netns (?P<peer_ns>\S+) mtu \d+ up"
)

RULE = re.compile(r"ip -n (?P<ns>\S+) rule (?P<verb>add|del) (?P<family>-[46]) (?P<rest>.*)")


def as_script(line: str) -> list[str]:
    """A dry-run line as a shell script writes it: `ip link add` takes neither `up` nor
    `alias`, so a veth pair is three commands there (netlink does it in one request), and the
    address family of `ip rule` is an option of `ip` itself."""
    rule = RULE.fullmatch(line)
    if rule is not None:  # the family goes before the object: `ip -4 -n NS rule ...`
        return [f"ip {rule['family']} -n {rule['ns']} rule {rule['verb']} {rule['rest']}"]
    veth = VETH.fullmatch(line)
    if veth is None:
        return [line]
    ns, name, mtu, peer, peer_ns = (veth[k] for k in ("ns", "name", "mtu", "peer", "peer_ns"))
    return [
        f"ip -n {ns} link add {name} mtu {mtu} type veth peer name {peer} netns {peer_ns} "
        f"mtu {mtu}",
        f"ip -n {ns} link set {name} alias {veth['alias']} up",
        f"ip -n {peer_ns} link set {peer} up",
    ]


def run_commands(commands: list[str]) -> dict[str, object]:
    """Run each command as its own process, as a shell script of `ip`/`nft` lines would."""
    t0 = time.perf_counter()
    children0 = os.times()
    failed = 0
    errors: collections.Counter[str] = collections.Counter()
    for command in commands:
        if "<<EOF" in command:
            done = subprocess.run(["bash", "-c", command], capture_output=True, check=False)
        else:
            done = subprocess.run(shlex.split(command), capture_output=True, check=False)
        if done.returncode != 0:
            failed += 1
            errors[done.stderr.decode(errors="replace").strip()[:60]] += 1
    seconds = time.perf_counter() - t0
    children1 = os.times()
    cpu = (children1.children_user - children0.children_user) + (
        children1.children_system - children0.children_system
    )
    return {
        "seconds": round(seconds, 3),
        "commands": len(commands),
        "failed_commands": failed,
        "cpu_seconds_children": round(cpu, 3),
        "errors": dict(errors.most_common(3)),
    }


async def ip_loop_baseline(
    *, factory: netns.NetnsFactory, names: list[str], state: str
) -> dict[str, object]:
    """The anchor's way: one `ip`/`nft` process per change, same changes as the agent's."""
    gateway = factory.create()
    factory.set_gateway_sysctls(gateway)
    factory.tailnet_peer(gateway=gateway)
    members = [member(index=i, pod=name) for i, name in enumerate(names)]
    out = io.StringIO()
    dry = reconciling.Agent(
        options=reconciling.Options(node="bench-node", gateway_state_root=state, dry_run=True),
        out=out,
    )
    await dry.apply_plan(plan(gateway=gateway, members=members, generation=1))
    commands: list[str] = []
    heredoc = False
    for line in out.getvalue().splitlines():
        if heredoc:  # the nft ruleset: lines of one command, up to EOF
            commands[-1] += "\n" + line
            heredoc = line != "EOF"
            continue
        commands.extend(as_script(line))
        heredoc = line.endswith("<<EOF")
    first_member = next(i for i, c in enumerate(commands) if " link add " in c)
    gateway_setup, per_member = commands[:first_member], commands[first_member:]
    pods = len(names)
    gateway_run = run_commands(gateway_setup)
    stitch = run_commands(per_member)
    reapply = run_commands(per_member)
    result: dict[str, object] = {
        "gateway_setup": gateway_run,
        "stitch": stitch | {"per_pod_ms_mean": round(1000 * stitch["seconds"] / pods, 3)},
        "reapply_rerun_script": reapply
        | {"per_pod_ms_mean": round(1000 * reapply["seconds"] / pods, 3)},
    }
    return result


async def run(pods: int) -> dict[str, object]:
    result: dict[str, object] = {
        "benchmark": "nodeagent",
        "pods": pods,
        "load_average_1m": os.getloadavg()[0],
        "cpus": os.cpu_count(),
    }
    with netns.NetnsFactory() as factory, tempfile.TemporaryDirectory() as state:
        gateway = factory.create()
        factory.set_gateway_sysctls(gateway)
        factory.tailnet_peer(gateway=gateway)
        started = time.perf_counter()
        names = [factory.create() for _ in range(pods)]
        result["setup_netns_seconds"] = round(time.perf_counter() - started, 3)
        members = [member(index=i, pod=name) for i, name in enumerate(names)]
        options = reconciling.Options(node="bench-node", gateway_state_root=str(Path(state)))

        agent = reconciling.Agent(options=options)
        for label, generation, fresh in (
            ("stitch", 1, False),
            ("reapply_unchanged", 2, False),
            ("adopt_after_restart", 3, True),
        ):
            if fresh:
                agent = reconciling.Agent(options=options)
            t0, cpu0 = time.perf_counter(), time.process_time()
            ack = await agent.apply_plan(
                plan(gateway=gateway, members=members, generation=generation)
            )
            result[label] = {
                **summary(ack, seconds=time.perf_counter() - t0),
                "cpu_seconds": round(time.process_time() - cpu0, 3),
            }
        t0 = time.perf_counter()
        ack = await agent.apply_plan(plan(gateway=gateway, members=[], generation=4))
        result["remove_all"] = {
            "seconds": round(time.perf_counter() - t0, 3),
            "removed": len(ack.removed),
            "netlink_writes": ack.netlink_writes,
        }
        baseline = await ip_loop_baseline(factory=factory, names=names, state=state)
        result["baseline_ip_loop"] = baseline
        result["ratios"] = ratios(result)
        result["load_average_1m_end"] = os.getloadavg()[0]
    return result


def ratios(result: dict[str, object]) -> dict[str, float | None]:
    """Baseline time / tailwire time, for the same changes (> 1: tailwire is faster)."""

    def seconds(*path: str) -> float | None:
        node: object = result
        for key in path:
            if not isinstance(node, dict) or key not in node:
                return None
            node = node[key]
        return float(node) if isinstance(node, int | float) else None

    def ratio(a: float | None, b: float | None) -> float | None:
        return round(a / b, 2) if a is not None and b else None

    return {
        "stitch_wall": ratio(
            seconds("baseline_ip_loop", "stitch", "seconds"), seconds("stitch", "seconds")
        ),
        "reapply_wall": ratio(
            seconds("baseline_ip_loop", "reapply_rerun_script", "seconds"),
            seconds("reapply_unchanged", "seconds"),
        ),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pods", type=int, default=250)
    parser.add_argument("--quick", action="store_true", help="10 pods: a smoke run")
    args = parser.parse_args()
    if args.quick:
        args.pods = 10
    reason = netns.unavailable_reason()
    if reason is not None:
        print(json.dumps({"benchmark": "nodeagent", "skipped": reason}))
        return 0
    print(json.dumps(asyncio.run(run(args.pods)), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
