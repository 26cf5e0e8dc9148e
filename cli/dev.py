"""`tailwire dev`: the whole system, long-running, with a live table; Ctrl-C stops it cleanly.

It runs `tailwire.testing.system` (a secured nats-server, every service as its own process)
against the emulated Kubernetes API seeded from `examples/` plus one `payments` member pod per
node (or a real cluster with `--kubeconfig`: then nothing is seeded and nodeagents run only
for the `--nodes` given), the control API at Tailscale when TAILWIRE_TAILSCALE_OAUTH_CLIENT_ID
and _SECRET are set (else the local stand-in, labelled as such), BIND when installed, and real
network namespaces when root. The table is built from the bus alone (the last status summary,
plan and ack per subject, and the DNS changes), so it reads the same for a real cluster.
SIGINT/SIGTERM stop everything and remove what was created; exit 0 when every service
stopped cleanly.

Must not: write to a real cluster (nothing is seeded there), or leave anything behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from pathlib import Path

import yaml
from nats.aio.msg import Msg
from pydantic import ValidationError
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from tailwire.shared import subjects
from tailwire.shared.events import dns, nodes, status
from tailwire.testing import bind, netns, system

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
DEFAULT_NODES = ("node-a", "node-b")
MEMBER_LABELS = {"tailgate.dev/egress": "true"}


class Board:
    """What the table shows, kept up to date from the bus (last message per subject)."""

    def __init__(self) -> None:
        self.summaries: dict[str, status.StatusSummary] = {}
        self.plans: dict[str, nodes.NodePlan] = {}
        self.acks: dict[str, nodes.NodeAck] = {}
        self.records: dict[str, set[tuple[str, str, str]]] = {}
        self.messages = 0
        self._announced: set[str] = set()

    def newly_ready(self) -> list[str]:
        """Resources that turned Ready since the last call (printed as lines above the table,
        so a log without a terminal shows progress too)."""
        ready = {key for key, summary in self.summaries.items() if summary.ready}
        new = sorted(ready - self._announced)
        self._announced = ready
        return new

    async def on_message(self, msg: Msg) -> None:
        self.messages += 1
        try:
            area = subjects.parse(msg.subject).area
        except ValueError:
            return
        with contextlib.suppress(ValidationError):
            if area == "status":
                summary = status.StatusSummary.model_validate_json(msg.data)
                self.summaries[f"{summary.kind}/{summary.name}"] = summary
            elif area == "node" and msg.subject.endswith(".plan"):
                plan = nodes.NodePlan.model_validate_json(msg.data)
                self.plans[plan.node] = plan
            elif area == "node" and msg.subject.endswith(".ack"):
                ack = nodes.NodeAck.model_validate_json(msg.data)
                self.acks[ack.node] = ack
            elif area == "dns":
                change = dns.DnsChanged.model_validate_json(msg.data)
                zone = self.records.setdefault(change.zone, set())
                zone.difference_update((r.name, r.type, r.value) for r in change.removed)
                zone.update((r.name, r.type, r.value) for r in change.added if r.type != "TXT")

    def render(self, *, header: str) -> Group:
        groups = Table(title="groups (status summaries)")
        for column in ("resource", "ready", "details", "conditions"):
            groups.add_column(column)
        for key, summary in sorted(self.summaries.items()):
            details = ", ".join(f"{k}={v}" for k, v in sorted(summary.details.items())[:4])
            reasons = ", ".join(f"{c.type}={c.status}" for c in summary.conditions)
            groups.add_row(key, "yes" if summary.ready else "no", details, reasons)
        members = Table(title="members (from the node plans)")
        for column in ("pod", "group", "node", "netns", "link"):
            members.add_column(column)
        plans = Table(title="plans and acks")
        for column in ("node", "plan gen", "gateways", "members", "ack gen", "pods ok", "failed"):
            plans.add_column(column)
        for node, plan in sorted(self.plans.items()):
            for m in plan.members:
                members.add_row(
                    f"{m.namespace}/{m.name}", m.group, node, m.netns or "-", m.link.member_v4
                )
            ack = self.acks.get(node)
            plans.add_row(
                node,
                str(plan.generation),
                ", ".join(g.group for g in plan.gateways) or "-",
                str(len(plan.members)),
                str(ack.generation) if ack else "-",
                str(sum(p.ok for p in ack.pods)) if ack else "-",
                "; ".join(p.error or "?" for p in ack.pods if not p.ok)[:80] if ack else "-",
            )
        records = Table(title="DNS records (from dns.changed)")
        for column in ("zone", "name", "type", "value"):
            records.add_column(column)
        for zone, entries in sorted(self.records.items()):
            for name, rtype, value in sorted(entries):
                records.add_row(zone, name, rtype, value)
        footer = f"{self.messages} bus messages seen; Ctrl-C stops everything"
        return Group(header, groups, members, plans, records, footer)


def _seed(s: system.System) -> None:
    """Every example manifest the emulator serves, and one payments member pod per node."""
    for path in sorted(EXAMPLES.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not isinstance(doc, dict) or s.kube is None:
                continue
            namespace = (doc.get("metadata") or {}).get("namespace")
            if namespace:
                s.create_namespace(namespace)
            with contextlib.suppress(LookupError):
                s.apply(doc)


def _options(*, kubeconfig: Path | None, nodes_: tuple[str, ...]) -> system.Options:
    client_id = os.environ.get("TAILWIRE_TAILSCALE_OAUTH_CLIENT_ID")
    client_secret = os.environ.get("TAILWIRE_TAILSCALE_OAUTH_CLIENT_SECRET")
    try:
        bind.find_named()
        use_bind = True
    except bind.BindUnavailable:
        use_bind = False
    return system.Options(
        nodes=nodes_,
        kubeconfig=kubeconfig,
        use_bind=use_bind,
        tailscale_client_id=client_id,
        tailscale_client_secret=client_secret,
        tailscale_api_url=os.environ.get("TAILWIRE_TAILSCALE_API_URL", "https://api.tailscale.com"),
        tailscale_tailnet=os.environ.get("TAILWIRE_TAILSCALE_TAILNET", "-"),
        log_level="WARNING",
    )


def _header(s: system.System) -> str:
    kube = f"emulated Kubernetes API {s.kube.url}" if s.kube else f"cluster of {s.kubeconfig}"
    control = (
        f"control API: LOCAL STAND-IN (not Tailscale) at {s.control.url}"
        if s.control
        else f"control API: {s.options.tailscale_api_url} (real credentials)"
    )
    datapath = "real netns" if s.netns else "no netns (not root)"
    dns_part = f"BIND {s.bind.host}:{s.bind.port}" if s.bind else "no BIND"
    return f"tailwire dev: nats {s.nats.url}; {kube}; {control}; {datapath}; {dns_part}"


async def _dev(
    *, console: Console, kubeconfig: Path | None, nodes_: tuple[str, ...], refresh: float
) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    board = Board()
    async with system.running(_options(kubeconfig=kubeconfig, nodes_=nodes_)) as s:
        subscription = await s.admin.subscribe(f"{subjects.ROOT}.>", cb=board.on_message)
        if s.kube is not None:
            _seed(s)
            for node in s.nodes:
                await s.create_member_pod(
                    namespace="payments", name=f"app-{node}", labels_=MEMBER_LABELS, node=node
                )
        header = _header(s)
        console.print(header)
        console.print(f"temp dir: {s.workdir}")
        with Live(board.render(header=header), console=console, auto_refresh=False) as live:
            console.print("live table running (Ctrl-C to stop)")
            while not stop.is_set():
                for key in board.newly_ready():
                    console.print(f"{key}: Ready")
                live.update(board.render(header=header), refresh=True)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(refresh):
                        await stop.wait()
        await subscription.unsubscribe()
        console.print("\nstopping...")
        created = sorted(s.netns.names) if s.netns is not None else []
    left = sorted(set(created) & set(netns.list_netns())) if created else []
    unclean = {name: code for name, code in s.exit_codes.items() if code != 0}
    console.print(f"network namespaces created: {' '.join(created) or 'none'}")
    if unclean or left or s.workdir.exists():
        console.print(f"[red]unclean stop: exits {unclean}, netns left {left}[/red]")
        for name, tail in s.unclean_logs.items():
            console.rule(f"end of {name}'s log")
            console.print(tail, markup=False, highlight=False)
        return 1
    console.print("stopped cleanly; processes, network namespaces and temp files removed")
    return 0


def run_dev(
    *,
    kubeconfig: Path | None = None,
    nodes_: tuple[str, ...] | None = None,
    refresh: float = 1.0,
    console: Console | None = None,
) -> int:
    console = console or Console()
    if nodes_ is None:
        nodes_ = () if kubeconfig is not None else DEFAULT_NODES
    return asyncio.run(_dev(console=console, kubeconfig=kubeconfig, nodes_=nodes_, refresh=refresh))
