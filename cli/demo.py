"""`tailwire demo`: the whole system, scripted, leaving nothing behind.

On the embedded system of `tailwire.testing.system` (a secured nats-server, the emulated
Kubernetes API, the local control-API stand-in, BIND when installed, real network namespaces
when root, every service as its own process) it:
1. creates a pod of the `payments` namespace, then the `payments` EgressGroup, then two more
   member pods on two nodes;
2. prints, per pod, the time from its creation in the Kubernetes API to the first node ack
   that reports it stitched, and the group's status as the renderer wrote it;
3. pings a tailnet peer from each pod's netns, through its node's gateway;
4. shows the split-horizon tailnet answer: a tailnet-exposed Gateway and an HTTPRoute make
   the dnsupdater write the record into BIND over RFC 2136, queried for real;
5. prints the trace of the group's creation as a tree of spans across the services, read
   back from the OTLP receiver every process exported to;
then stops everything (exit 0 only if every service stopped cleanly).

The real path (the default where it can run: root, network namespaces and the peers `make
peers` builds): a local Headscale and a real tailnet device `db` (`tailwire.testing.tailnet`),
the group of examples/demo/egressgroup-headscale.yaml on the TailscaleTailnet the launcher
seeds for that Headscale; the keyminter mints the group's key through Headscale's API, each
gateway pod runs a real tailscaled joined with it, and the members ping `db`'s 100.x and
fd7a: addresses through it; Headscale's device list shows each gateway with the group's tag
and the pre-auth key it joined with. Elsewhere (or with `--simulated`) the seed's group
examples/egressgroup-payments.yaml on the control-API stand-in, each gateway netns with a
simulated peer behind a veth named `tailscale0` (root only; without netns nothing is pinged),
and the demo says why.

Must not: leave a process, a netns or a temp file behind, or reach beyond loopback and the
namespaces it made.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from tailwire.services.keyminter.adapters import secrets as keyminter_secrets
from tailwire.shared import subjects
from tailwire.shared.events import nodes
from tailwire.shared.k8s import names
from tailwire.testing import bind, netns, otlp, peers, system, tailnet

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SEED_GROUP = EXAMPLES / "egressgroup-payments.yaml"
TAILNET_GROUP = EXAMPLES / "demo" / "egressgroup-headscale.yaml"
PEER = "db"  # the real tailnet device the members reach
GROUP = "payments"
MEMBER_LABELS = {"tailgate.dev/egress": "true"}
ZONE = "tailnet.test"
DNS_HOST = f"docs.{ZONE}"
GATEWAY_IPS = ("100.64.0.10", "fd7a:115c:a1e0::a")
TRACE_SERVICES = ("watcher", "renderer", "keyminter", "nodeagent")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Target:
    """What the members ping through their gateway."""

    name: str
    ipv4: str
    ipv6: str
    real: bool


def run_demo(*, console: Console | None = None, simulated: bool = False) -> int:
    console = console or Console()
    return asyncio.run(_demo(console, simulated=simulated))


def _bind_available() -> bool:
    try:
        bind.find_named()
    except bind.BindUnavailable:
        return False
    return True


async def _demo(console: Console, *, simulated: bool) -> int:
    console.rule("tailwire demo")
    why_not = "--simulated was given" if simulated else system.real_tailnet_unavailable()
    if why_not is not None:
        console.print(
            f"[yellow]the real tailnet path does not run:[/yellow] {why_not}; gateways get "
            "the SIMULATED tailnet peer instead, keys the local control-API stand-in"
        )
    real = why_not is None
    options = system.Options(
        nodes=("node-a", "node-b"),
        use_bind=_bind_available(),
        dns_zones=(ZONE,),
        real_tailnet=real,
        tailnet_peers=(PEER,) if real else (),
    )
    started = time.monotonic()
    async with system.running(options) as s:
        console.print(f"system up in {time.monotonic() - started:.1f} s")
        _print_parts(console, s)
        async with s.capture() as seen:
            trace_id = await _egress_scene(console, s, seen, target=_target(s))
            if s.tailnet is not None:
                await _tailnet_scene(console, s)
            await _dns_scene(console, s)
            await _trace_scene(console, s, trace_id)
        workdir = s.workdir
        created_netns = sorted(s.netns.names) if s.netns is not None else []
        tailnet_processes = _tailnet_processes(s)
    return _verdict(
        console,
        s,
        workdir=workdir,
        created_netns=created_netns,
        tailnet_processes=tailnet_processes,
    )


def _target(s: system.System) -> Target:
    peer = s.tailnet_peers.get(PEER)
    if peer is None:
        return Target(
            name="simulated peer", ipv4=system.PEER_IPV4, ipv6=system.PEER_IPV6, real=False
        )
    return Target(name=PEER, ipv4=peer.ipv4(), ipv6=peer.ipv6(), real=True)


def _tailnet_processes(s: system.System) -> list[tuple[str, Any]]:
    """(name, Popen) of Headscale and every tailscaled, to check after teardown."""
    if s.tailnet is None:
        return []
    found = [("headscale", s.tailnet.control.process)]
    found += [(daemon.name, daemon.process) for daemon in s.tailnet.daemons]
    return [(name, process) for name, process in found if process is not None]


def _print_parts(console: Console, s: system.System) -> None:
    table = Table(title="what runs", show_lines=False)
    table.add_column("part")
    table.add_column("where")
    table.add_row("nats-server (JetStream, one user per service and node)", s.nats.url)
    table.add_row("Kubernetes API (emulated)", s.kube.url if s.kube else str(s.kubeconfig))
    if s.tailnet is not None and s.tailnet.control.forwarder is not None:
        table.add_row(
            f"control plane: Headscale {peers.HEADSCALE_VERSION} (real), TailscaleTailnet "
            f"{system.TAILNET}",
            f"{tailnet.CONTROL_URL} (API: {s.tailnet.control.forwarder.url})",
        )
        for name, peer in sorted(s.tailnet_peers.items()):
            table.add_row(
                f"tailnet device {name}: tailscaled {peers.TAILSCALE_VERSION} (real)",
                ", ".join(peer.ips()),
            )
    if s.control is not None:
        used = "unused by the demo's group" if s.tailnet is not None else "not Tailscale"
        table.add_row(f"control API: LOCAL STAND-IN ({used})", s.control.url)
    table.add_row(
        "BIND (tailnet zone)", f"{s.bind.host}:{s.bind.port}" if s.bind else "not installed"
    )
    table.add_row("OTLP/HTTP trace receiver", s.otlp.url)
    netns_state = "real named netns" if s.netns else f"none ({netns.unavailable_reason()})"
    table.add_row("pods and gateways", netns_state)
    if s.netns is not None:
        gateways = (
            f"real tailscaled {peers.TAILSCALE_VERSION} in each gateway pod's netns"
            if s.tailnet is not None
            else f"SIMULATED tailnet peer {system.PEER_IPV4} behind a veth tailscale0"
        )
        table.add_row("gateways", gateways)
    for name, process in s.processes.items():
        table.add_row(f"service {name}", f"pid {process.pid}")
    console.print(table)


async def _egress_scene(
    console: Console, s: system.System, seen: system.Capture, *, target: Target
) -> str | None:
    manifest = TAILNET_GROUP if target.real else SEED_GROUP
    console.rule(
        f"egress: the payments group on a real tailnet (Headscale), reaching device {target.name}"
        if target.real
        else "egress: the seed's payments group"
    )
    s.create_namespace(GROUP)
    first = await s.create_member_pod(namespace=GROUP, name="api-0", labels_=MEMBER_LABELS)
    console.print(f"pod {GROUP}/api-0 on {first.node}: no group selects it yet")
    group_created = time.monotonic()
    s.apply_file(manifest)
    console.print(f"applied {manifest.relative_to(EXAMPLES.parent)}")
    ref = subjects.ObjectRef(kind=subjects.Kind.EGRESSGROUP, namespace=None, name=GROUP)
    snapshot = await seen.wait_for(subjects.cluster(ref), within=20)
    others = [
        await s.create_member_pod(namespace=GROUP, name=name, labels_=MEMBER_LABELS, node=node)
        for name, node in (("api-1", "node-b"), ("worker-0", "node-a"))
    ]
    table = Table(title="pod -> stitched and acked by its node")
    ping_column = f"ping {target.name} {target.ipv4} / {target.ipv6} via gateway"
    for column in ("pod", "node", "from", "to ack", ping_column):
        table.add_column(column)
    for pod, origin, label in (
        (first, group_created, "group creation"),
        *((p, p.created_at, "pod creation") for p in others),
    ):
        stitched = True if s.netns is not None else None  # no netns: the ack reports why
        await s.wait_for_ack(node=pod.node, pod_uid=pod.uid, ok=stitched, within=45)
        acked = _first_ack_time(seen, pod, ok=stitched)
        latency = f"{(acked - origin) * 1000:.0f} ms" if acked is not None else "?"
        reached = await _ping(s, pod, target)
        table.add_row(f"{pod.namespace}/{pod.name}", pod.node, label, latency, reached)
    console.print(table)
    if target.real and s.netns is not None:
        _print_ping(console, s, first, target)
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


async def _ping(s: system.System, pod: system.MemberPod, target: Target) -> str:
    if s.netns is None:
        return f"not shown: no netns ({netns.unavailable_reason() or 'disabled'})"
    # Through a real gateway the first packets may go while WireGuard's path is being set up.
    within = 20.0 if target.real else 0.0
    answers = []
    for address in (target.ipv4, target.ipv6):
        reached = await _reach(s, pod, address, within=within)
        answers.append("[green]reached[/green]" if reached else "[red]no answer[/red]")
    return " / ".join(answers)


async def _reach(s: system.System, pod: system.MemberPod, address: str, *, within: float) -> bool:
    deadline = time.monotonic() + within
    while True:
        if await asyncio.to_thread(s.ping, pod, address=address):
            return True
        if time.monotonic() >= deadline:
            return False


def _print_ping(console: Console, s: system.System, pod: system.MemberPod, target: Target) -> None:
    """Three echoes from the member's netns to the device, as ping prints them."""
    assert s.netns is not None
    assert pod.netns is not None
    argv = ["ping", "-n", "-c", "3", "-i", "0.2", "-W", "2", target.ipv4]
    result = s.netns.run(argv, netns=pod.netns, check=False)
    console.print(
        f"ping from {pod.namespace}/{pod.name}'s netns (its own eth0 and ts0 only) to "
        f"{target.name} {target.ipv4}, through the real tailscaled gateway on {pod.node}:"
    )
    lines = [
        line
        for line in result.stdout.splitlines()
        if re.search(r"bytes from|packets transmitted|^rtt", line)
    ]
    console.print("\n".join(f"  {line}" for line in lines), markup=False, highlight=False)


async def _tailnet_scene(console: Console, s: system.System) -> None:
    """Headscale's devices (each gateway with the group's tag and the pre-auth key it joined
    with) against the key the keyminter minted into the group's Secret."""
    assert s.tailnet is not None
    assert s.kube is not None
    console.rule("tailnet: Headscale's view")
    secret_name = names.authkey_secret(GROUP)
    secret = s.kube.get("secrets", name=secret_name, namespace=system.GATEWAY_NAMESPACE) or {}
    minted = ((secret.get("metadata") or {}).get("annotations") or {}).get(
        keyminter_secrets.KEY_ID, "?"
    )
    listed = await asyncio.to_thread(s.tailnet.control.api, "GET", "/api/v1/node")
    devices: list[dict[str, Any]] = listed.get("nodes") or []
    table = Table(title=f"Headscale {peers.HEADSCALE_VERSION}: devices")
    table.add_column("device", no_wrap=True)
    table.add_column("tags")
    table.add_column("addresses", no_wrap=True)
    table.add_column("online")
    table.add_column("joined with key")
    for listed_device in sorted(devices, key=lambda n: str(n.get("givenName"))):
        table.add_row(
            str(listed_device.get("givenName") or listed_device.get("name")),
            ",".join(listed_device.get("tags") or []),
            "\n".join(listed_device.get("ipAddresses") or []),
            "yes" if listed_device.get("online") else "no",
            str((listed_device.get("preAuthKey") or {}).get("id", "?")),
        )
    console.print(table)
    console.print(
        f"the keyminter minted pre-auth key {minted} through Headscale's API into Secret "
        f"{system.GATEWAY_NAMESPACE}/{secret_name}"
    )
    gateways: dict[tuple[str, str], system.GatewayPod] = s.kubelet.pods if s.kubelet else {}
    for (group, node), pod in sorted(gateways.items()):
        if pod.daemon is None:
            continue
        hostname = names.gateway_hostname(group=group, node=node)
        device = next((n for n in devices if n.get("givenName") == hostname), {})
        key_id = str((device.get("preAuthKey") or {}).get("id", "?"))
        verdict = "the keyminter's key" if key_id == minted else "[red]not the minted key[/red]"
        console.print(
            f"gateway {hostname} (tailscaled pid {pod.daemon.pid} in {pod.netns}): joined with "
            f"pre-auth key {key_id}, {verdict}; tags {','.join(device.get('tags') or []) or '-'}"
        )
    found = s.kube.get("tailscaletailnets", name=system.TAILNET) or {}
    for condition in (found.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            console.print(
                f"TailscaleTailnet {system.TAILNET}: Ready={condition.get('status')} "
                f"({condition.get('reason')}: {condition.get('message') or '-'})"
            )


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


def _verdict(
    console: Console,
    s: system.System,
    *,
    workdir: Path,
    created_netns: list[str],
    tailnet_processes: list[tuple[str, Any]],
) -> int:
    unclean = {name: code for name, code in s.exit_codes.items() if code != 0}
    left = sorted(set(created_netns) & set(netns.list_netns())) if created_netns else []
    running = [name for name, process in tailnet_processes if process.poll() is None]
    console.rule("teardown")
    console.print(f"temp dir: {workdir}")
    console.print(f"network namespaces created: {' '.join(created_netns) or 'none'}")
    if tailnet_processes:
        console.print(
            f"tailnet processes stopped: {len(tailnet_processes) - len(running)} of "
            f"{len(tailnet_processes)} (headscale and every tailscaled)"
        )
    if running:
        console.print(f"[red]tailnet processes left running: {running}[/red]")
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
        if not unclean and not workdir.exists() and not left and not running
        else "teardown was not clean"
    )
    return 1 if unclean or workdir.exists() or left or running else 0
