"""`tailwire demo`: the whole system, scripted, leaving nothing behind.

On the embedded system of `tailwire.testing.system` (a secured nats-server, the emulated
Kubernetes API, the local control-API stand-in, BIND when installed, real network namespaces
when root, every service as its own process) it:
1. creates a pod of the `payments` namespace, then the seed's `payments` EgressGroup
   (examples/egressgroup-payments.yaml), then two more member pods on two nodes;
2. prints, per pod, the time from its creation in the Kubernetes API to the first node ack
   that reports it stitched, and the group's status as the renderer wrote it;
3. pings the simulated tailnet peer from each pod's netns, through its gateway (root only;
   otherwise it says so);
4. shows the split-horizon tailnet answer: a tailnet-exposed Gateway and an HTTPRoute make
   the dnsupdater write the record into BIND over RFC 2136, queried for real;
5. prints the trace of the group's creation as a tree of spans across the services, read
   back from the OTLP receiver every process exported to;
then stops everything (exit 0 only if every service stopped cleanly).

Must not: leave a process, a netns or a temp file behind, or reach beyond loopback.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from tailwire.shared import subjects
from tailwire.shared.events import nodes
from tailwire.testing import bind, netns, otlp, system

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
GROUP = "payments"
MEMBER_LABELS = {"tailgate.dev/egress": "true"}
ZONE = "tailnet.test"
DNS_HOST = f"docs.{ZONE}"
GATEWAY_IPS = ("100.64.0.10", "fd7a:115c:a1e0::a")
TRACE_SERVICES = ("watcher", "renderer", "keyminter", "nodeagent")


def run_demo(*, console: Console | None = None) -> int:
    console = console or Console()
    return asyncio.run(_demo(console))


def _bind_available() -> bool:
    try:
        bind.find_named()
    except bind.BindUnavailable:
        return False
    return True


async def _demo(console: Console) -> int:
    console.rule("tailwire demo")
    options = system.Options(
        nodes=("node-a", "node-b"), use_bind=_bind_available(), dns_zones=(ZONE,)
    )
    started = time.monotonic()
    async with system.running(options) as s:
        console.print(f"system up in {time.monotonic() - started:.1f} s")
        _print_parts(console, s)
        async with s.capture() as seen:
            trace_id = await _egress_scene(console, s, seen)
            await _dns_scene(console, s)
            await _trace_scene(console, s, trace_id)
        workdir = s.workdir
        created_netns = sorted(s.netns.names) if s.netns is not None else []
    return _verdict(console, s, workdir=workdir, created_netns=created_netns)


def _print_parts(console: Console, s: system.System) -> None:
    table = Table(title="what runs", show_lines=False)
    table.add_column("part")
    table.add_column("where")
    table.add_row("nats-server (JetStream, one user per service and node)", s.nats.url)
    table.add_row("Kubernetes API (emulated)", s.kube.url if s.kube else str(s.kubeconfig))
    if s.control is not None:
        table.add_row("control API: LOCAL STAND-IN, not Tailscale", s.control.url)
    table.add_row(
        "BIND (tailnet zone)", f"{s.bind.host}:{s.bind.port}" if s.bind else "not installed"
    )
    table.add_row("OTLP/HTTP trace receiver", s.otlp.url)
    netns_state = "real named netns" if s.netns else f"none ({netns.unavailable_reason()})"
    table.add_row("pods and gateways", netns_state)
    for name, process in s.processes.items():
        table.add_row(f"service {name}", f"pid {process.pid}")
    console.print(table)


async def _egress_scene(console: Console, s: system.System, seen: system.Capture) -> str | None:
    console.rule("egress: the seed's payments group")
    s.create_namespace(GROUP)
    first = await s.create_member_pod(namespace=GROUP, name="api-0", labels_=MEMBER_LABELS)
    console.print(f"pod {GROUP}/api-0 on {first.node}: no group selects it yet")
    group_created = time.monotonic()
    s.apply_file(EXAMPLES / "egressgroup-payments.yaml")
    console.print("applied examples/egressgroup-payments.yaml")
    ref = subjects.ObjectRef(kind=subjects.Kind.EGRESSGROUP, namespace=None, name=GROUP)
    snapshot = await seen.wait_for(subjects.cluster(ref), within=20)
    others = [
        await s.create_member_pod(namespace=GROUP, name=name, labels_=MEMBER_LABELS, node=node)
        for name, node in (("api-1", "node-b"), ("worker-0", "node-a"))
    ]
    table = Table(title="pod -> stitched and acked by its node")
    for column in ("pod", "node", "from", "to ack", "ping 100.100.0.2 via gateway"):
        table.add_column(column)
    for pod, origin, label in (
        (first, group_created, "group creation"),
        *((p, p.created_at, "pod creation") for p in others),
    ):
        stitched = True if s.netns is not None else None  # no netns: the ack reports why
        await s.wait_for_ack(node=pod.node, pod_uid=pod.uid, ok=stitched, within=30)
        acked = _first_ack_time(seen, pod, ok=stitched)
        latency = f"{(acked - origin) * 1000:.0f} ms" if acked is not None else "?"
        table.add_row(f"{pod.namespace}/{pod.name}", pod.node, label, latency, _ping(s, pod))
    console.print(table)
    for pod in others:
        acked = _first_ack_time(seen, pod, ok=True if s.netns is not None else None)
        if acked is not None:
            console.print(
                f"time from pod creation to ack: {(acked - pod.created_at) * 1000:.0f} ms "
                f"({pod.namespace}/{pod.name} on {pod.node})"
            )
    # Without netns the pods cannot be stitched, so the group never turns Ready.
    wanted = _ready_with(3) if s.netns is not None else lambda st: st.get("matchedPods") == 3
    try:
        status = await s.wait_for_group_status(GROUP, wanted, within=20)
    except TimeoutError:
        status = s.group_status(GROUP)
    _print_status(console, status)
    return snapshot.trace_id


def _ready_with(members: int) -> Callable[[dict[str, Any]], bool]:
    def check(status: dict[str, Any]) -> bool:
        ready = any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in status.get("conditions") or []
        )
        return ready and status.get("matchedPods") == members

    return check


def _first_ack_time(
    seen: system.Capture, pod: system.MemberPod, *, ok: bool | None
) -> float | None:
    """When the first ack reporting the pod (stitched, unless `ok` is None) arrived."""
    for message in seen.on(subjects.node_ack(pod.node)):
        ack = nodes.NodeAck.model_validate_json(message.data)
        if any(p.pod_uid == pod.uid and ok in (None, p.ok) for p in ack.pods):
            return message.received_at
    return None


def _ping(s: system.System, pod: system.MemberPod) -> str:
    if s.netns is None:
        return f"not shown: no netns ({netns.unavailable_reason() or 'disabled'})"
    return "[green]reached[/green]" if s.ping(pod) else "[red]no answer[/red]"


def _print_status(console: Console, status: dict[str, Any]) -> None:
    conditions = "; ".join(
        f"{c.get('type')}={c.get('status')} ({c.get('reason')}: {c.get('message') or '-'})"
        for c in status.get("conditions") or []
    )
    console.print(
        f"EgressGroup {GROUP} status: matchedPods={status.get('matchedPods')}, "
        f"gatewayNodes={status.get('gatewayNodes')}, conditions: {conditions}"
    )


def _dns_objects() -> list[dict[str, Any]]:
    """A Gateway on the tailnet as Envoy Gateway + the Tailscale operator leave it, and a
    route on it (what the renderer's TailscaleGateway stack yields in a real cluster)."""
    owner = {
        "gateway.envoyproxy.io/owning-gateway-name": "tailscale-gateway",
        "gateway.envoyproxy.io/owning-gateway-namespace": "tailscale",
    }
    parent = {"name": "tailscale-gateway", "namespace": "tailscale"}
    return [
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "Gateway",
            "metadata": {"name": "tailscale-gateway", "namespace": "tailscale"},
            "spec": {
                "gatewayClassName": "tailscale",
                "listeners": [{"name": "https", "port": 443, "protocol": "HTTPS"}],
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": "envoy-tailscale-gateway",
                "namespace": "envoy-gateway",
                "labels": owner,
            },
            "spec": {"type": "LoadBalancer", "loadBalancerClass": "tailscale"},
            "status": {"loadBalancer": {"ingress": [{"ip": ip} for ip in GATEWAY_IPS]}},
        },
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": "docs", "namespace": "apps"},
            "spec": {"parentRefs": [parent], "hostnames": [DNS_HOST]},
            "status": {
                "parents": [
                    {
                        "parentRef": parent,
                        "controllerName": "gateway.envoyproxy.io/gatewayclass-controller",
                        "conditions": [{"type": "Accepted", "status": "True"}],
                    }
                ]
            },
        },
    ]


async def _dns_scene(console: Console, s: system.System) -> None:
    console.rule("split-horizon DNS")
    if s.bind is None:
        console.print("[yellow]not shown:[/yellow] BIND (named) is not installed here")
        return
    for namespace in ("tailscale", "envoy-gateway", "apps"):
        s.create_namespace(namespace)
    for obj in _dns_objects():
        s.apply(obj)
    bind_server = s.bind
    answers = await system.eventually(
        lambda: bind_server.query(DNS_HOST, "A"), within=20, what=f"{DNS_HOST} in BIND"
    )
    answers6 = bind_server.query(DNS_HOST, "AAAA")
    console.print(
        f"tailnet view (BIND at {bind_server.host}:{bind_server.port}, written by the "
        f"dnsupdater over RFC 2136): {DNS_HOST} A {', '.join(answers)}; "
        f"AAAA {', '.join(answers6) or '-'}"
    )
    console.print(
        "[yellow]not shown:[/yellow] the in-cluster view (a CoreDNS rewrite to the "
        "gateway-internal Service) and the public view (ExternalDNS) need CoreDNS and a public "
        "zone, which the demo does not run; see tests/dnsupdater for both."
    )


async def _trace_scene(console: Console, s: system.System, trace_id: str | None) -> None:
    console.rule("one change, one trace")
    if trace_id is None:
        console.print("[red]the group's snapshot carried no trace context[/red]")
        return
    try:
        spans = await s.otlp.wait_for_trace(trace_id, services=TRACE_SERVICES, within=20)
    except TimeoutError:
        spans = s.otlp.trace(trace_id)
        console.print("[yellow]not every service's spans arrived in time[/yellow]")
    await asyncio.sleep(0.5)  # spans of the same trace exported in the next batch
    spans = s.otlp.trace(trace_id) or spans
    services = sorted({span.short_service for span in spans})
    console.print(
        otlp.span_tree(
            spans,
            title=f"trace {trace_id}: creating EgressGroup {GROUP} "
            f"({len(spans)} spans, services: {', '.join(services)})",
        )
    )


def _verdict(console: Console, s: system.System, *, workdir: Path, created_netns: list[str]) -> int:
    unclean = {name: code for name, code in s.exit_codes.items() if code != 0}
    left = sorted(set(created_netns) & set(netns.list_netns())) if created_netns else []
    console.rule("teardown")
    console.print(f"temp dir: {workdir}")
    console.print(f"network namespaces created: {' '.join(created_netns) or 'none'}")
    if left:
        console.print(f"[red]network namespaces left behind: {left}[/red]")
    if unclean:
        console.print(f"[red]services exited uncleanly: {unclean}[/red]")
        for name, tail in s.unclean_logs.items():
            console.rule(f"end of {name}'s log")
            console.print(tail, markup=False, highlight=False)
    if workdir.exists():
        console.print(f"[red]temp dir left behind: {workdir}[/red]")
    console.print(
        "all services stopped cleanly; processes, network namespaces and temp files removed"
        if not unclean and not workdir.exists() and not left
        else "teardown was not clean"
    )
    return 1 if unclean or workdir.exists() or left else 0
