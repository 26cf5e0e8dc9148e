"""Start-up and teardown of the whole system: `running()`.

Order: temp dir -> secured nats-server -> Kubernetes API emulator (seeded) -> control-API
fake -> BIND (optional) -> OTLP receiver -> network namespaces (root) -> with a real tailnet,
Headscale (and its TailscaleTailnet and API-key Secret seeded) -> the central services (which
declare the streams; a real tailnet's peers join meanwhile) -> one nodeagent per node.
Teardown runs in reverse from an AsyncExitStack, so a failure anywhere (or Ctrl-C) still
stops every process, removes every netns this run created and deletes the temp dir. Each
service gets its settings explicitly (`service_env`): its own NATS user, the emulator's
kubeconfig, the control API, BIND, OTLP.

Must not: be imported by services, or touch anything outside its temp dir, its own netns and
loopback ports.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

from tailwire.shared import permissions, subjects
from tailwire.shared.resources import tailscaletailnet
from tailwire.testing import bind, controlapi, kubeapi, natsserver, netns, otlp, peers, tailnet
from tailwire.testing.system import buses, kubelet, launching, processes

T = TypeVar("T")

log = logging.getLogger(__name__)


def service_env(system: launching.System, *, user: str) -> dict[str, str]:
    opts = system.options
    env = processes.base_environment()
    # A central service's NATS user is its name; it may have a kubeconfig of its own.
    kubeconfig = opts.service_kubeconfigs.get(user, system.kubeconfig)
    env.update(
        {
            "TAILWIRE_NATS_URL": system.nats.url,
            "TAILWIRE_NATS_USER": user,
            "TAILWIRE_NATS_PASSWORD": system.passwords[user],
            "KUBECONFIG": str(kubeconfig),
            "TAILWIRE_KUBECONFIG": str(kubeconfig),
            "TAILWIRE_NAMESPACE": launching.GATEWAY_NAMESPACE,
            "TAILWIRE_CLUSTER_CIDRS": ",".join(launching.CLUSTER_CIDRS),
            "TAILWIRE_LOG_LEVEL": opts.log_level,
            "TAILWIRE_TRACES_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_ENDPOINT": system.otlp.url,
            "OTEL_BSP_SCHEDULE_DELAY": "100",
            "TAILWIRE_TAILSCALE_TAILNET": opts.tailscale_tailnet,
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(_tailscale_env(system))
    if system.bind is not None:
        env.update(
            {
                "TAILWIRE_DNS_ZONES": json.dumps(
                    [{"zone": z, "backends": ["rfc2136"]} for z in system.bind.zones]
                ),
                "TAILWIRE_DNS_RFC2136_SERVER": system.bind.host,
                "TAILWIRE_DNS_RFC2136_PORT": str(system.bind.port),
                "TAILWIRE_DNS_TSIG_KEY_NAME": system.bind.key_name,
                "TAILWIRE_DNS_TSIG_ALGORITHM": system.bind.key_algorithm,
                "TAILWIRE_DNS_TSIG_SECRET": system.bind.key_secret,
            }
        )
    env.update(opts.env)
    return env


def _tailscale_env(system: launching.System) -> dict[str, str]:
    opts = system.options
    if system.control is not None:
        return dict(system.stand_in_credentials, TAILWIRE_TAILSCALE_API_URL=system.control.url)
    return {
        "TAILWIRE_TAILSCALE_API_URL": opts.tailscale_api_url,
        "TAILWIRE_TAILSCALE_OAUTH_CLIENT_ID": opts.tailscale_client_id or "",
        "TAILWIRE_TAILSCALE_OAUTH_CLIENT_SECRET": opts.tailscale_client_secret or "",
    }


def make_processes(system: launching.System) -> None:
    logs = system.workdir / "logs"
    logs.mkdir(exist_ok=True)
    for service in launching.CENTRAL_SERVICES:
        system.processes[service] = processes.ServiceProcess.for_service(
            service=service,
            node=None,
            env=service_env(system, user=service),
            health_port=natsserver.free_port(),
            log_dir=logs,
        )
    for node in system.nodes:
        env = service_env(system, user=permissions.nodeagent_user(node))
        state = system.gateway_state_root(node)
        state.mkdir(parents=True, exist_ok=True)
        env["TAILWIRE_GATEWAY_STATE_ROOT"] = str(state)
        process = processes.ServiceProcess.for_service(
            service="nodeagent",
            node=node,
            env=env,
            health_port=natsserver.free_port(),
            log_dir=logs,
        )
        system.processes[process.name] = process


async def start_all(system: launching.System) -> None:
    central = [system.processes[s] for s in launching.CENTRAL_SERVICES]
    for process in central:
        process.start()
    # Central services declare the streams; a confined nodeagent may not.
    await asyncio.gather(*(p.wait_ready(within=system.options.ready_within) for p in central))
    agents = [system.processes[f"nodeagent/{n}"] for n in system.nodes]
    for process in agents:
        process.start()
    await asyncio.gather(*(p.wait_ready(within=system.options.ready_within) for p in agents))


async def stop_all(system: launching.System) -> None:
    codes = await asyncio.gather(*(p.stop() for p in system.processes.values()))
    system.exit_codes = dict(zip(system.processes, codes, strict=True))
    # The logs go with the temp dir; keep the end of each unclean one for the report.
    system.unclean_logs = {
        name: system.processes[name].log_tail(60)
        for name, code in system.exit_codes.items()
        if code != 0
    }


class SessionNatsServer(natsserver.NatsServer):
    """nats-server in its own session, dying with the launcher: a Ctrl-C at the terminal
    reaches the launcher only, which stops the services first and NATS last."""

    def start(self, *, timeout: float = 10.0) -> None:
        if self.process is not None:
            return
        self.store_dir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            self._command(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=processes.die_with_parent,
        )
        self._wait_ready(timeout=timeout)


def seed_cluster(system: launching.System, api: kubeapi.KubeAPI) -> None:
    system.create_namespace(launching.GATEWAY_NAMESPACE)
    for index, node in enumerate(system.nodes):
        api.create(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": node,
                    "labels": {"kubernetes.io/hostname": node, "kubernetes.io/os": "linux"},
                },
                "status": {
                    "addresses": [{"type": "InternalIP", "address": f"192.168.77.{index + 10}"}],
                    "conditions": [{"type": "Ready", "status": "True"}],
                },
            }
        )


def seed_tailnet(system: launching.System) -> None:
    """The TailscaleTailnet of the local Headscale and the Secret with its API key, seeded in
    the emulator (`tailnet_objects`)."""
    assert system.tailnet is not None
    for document in tailnet_objects(system.tailnet.control, tags=system.options.tags):
        system.apply(document)


def tailnet_objects(control: tailnet.Headscale, *, tags: tuple[str, ...]) -> list[dict[str, Any]]:
    """The Secret with a started Headscale's API key and the TailscaleTailnet `TAILNET` naming
    it, as a user would create them (in the emulator or a real cluster): the keyminter mints
    through `apiURL` (the loopback forwarder to Headscale's REST API), the gateways' tailscaled
    log in to `controlURL` (Headscale's address on the underlay)."""
    assert control.forwarder is not None
    key = base64.b64encode(control.api_key.encode()).decode()
    namespace = launching.GATEWAY_NAMESPACE
    return [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": launching.TAILNET_SECRET,
                "namespace": namespace,
                "annotations": {tailscaletailnet.SECRET_TAILNETS_ANNOTATION: launching.TAILNET},
            },
            "data": {"api_key": key},
        },
        {
            "apiVersion": "gateway.tailscale.com/v1alpha1",
            "kind": "TailscaleTailnet",
            "metadata": {"name": launching.TAILNET},
            "spec": {
                "tailnet": tailnet.MAGICDNS_DOMAIN,
                "backend": "headscale",
                "apiURL": control.forwarder.url,
                "controlURL": tailnet.CONTROL_URL,
                "oauthSecretName": launching.TAILNET_SECRET,
                "oauthSecretNamespace": namespace,
                "headscale": {"user": launching.HEADSCALE_USER},
                "tags": list(tags),
            },
        },
    ]


def real_tailnet_unavailable() -> str | None:
    """Why `Options(real_tailnet=True)` cannot run on this machine (no root or netns, a host
    tool or a peer `make peers` builds missing), or None."""
    reason = netns.unavailable_reason() or tailnet.tools_missing()
    if reason:
        return reason
    try:
        for name in ("headscale", "tailscaled", "tailscale"):
            peers.binary(name)
    except peers.PeerMissing as exc:
        return str(exc)
    return None


class _Background:
    """Work of the tailnet's run in threads, waited for before the tailnet stops (a thread
    cannot be cancelled; whatever it started must be known to `Tailnet.close()`)."""

    def __init__(self, net: tailnet.Tailnet) -> None:
        self.net = net
        self.pending: list[asyncio.Future[Any]] = []

    def run(self, call: Callable[[], T]) -> asyncio.Future[T]:
        future = asyncio.ensure_future(asyncio.to_thread(call))
        self.pending.append(future)
        return future

    async def close(self) -> None:
        if self.pending:
            await asyncio.wait(self.pending)
            for future in self.pending:  # retrieved: a failed start was raised already
                if not future.cancelled():
                    future.exception()
        await asyncio.to_thread(self.net.close)


def start_peers(net: tailnet.Tailnet, hostnames: tuple[str, ...]) -> dict[str, tailnet.Tailscaled]:
    return {name: net.peer(name) for name in hostnames}


def netns_wanted(option: bool | None) -> bool:
    reason = netns.unavailable_reason() if option is not False else None
    if option is True and reason is not None:
        raise RuntimeError(f"network namespaces were required: {reason}")
    return option is not False and reason is None


@contextlib.asynccontextmanager
async def running(options: launching.Options | None = None) -> AsyncIterator[launching.System]:
    """Start the whole system; yield it; always tear everything down."""
    options = options or launching.Options()
    workdir = Path(tempfile.mkdtemp(prefix="tailwire-system-"))
    system = launching.System(options=options, workdir=workdir)
    async with contextlib.AsyncExitStack() as stack:
        stack.callback(shutil.rmtree, workdir, True)
        # NATS: one user per service and per node, random passwords, plus the test admin.
        users = [str(s) for s in subjects.Service if s is not subjects.Service.NODEAGENT]
        users += [permissions.nodeagent_user(n) for n in options.nodes]
        if not options.nodes:  # render_nats_config then adds one shared `nodeagent` user
            users.append(str(subjects.Service.NODEAGENT))
        system.passwords = {u: secrets.token_urlsafe(18) for u in users}
        admin_password = secrets.token_urlsafe(18)
        port = natsserver.free_port()
        config = permissions.render_nats_config(
            passwords=system.passwords,
            nodes=options.nodes,
            listen=f"127.0.0.1:{port}",
            store_dir=str(workdir / "nats" / "jetstream"),
        )
        system.nats = SessionNatsServer(
            store_dir=workdir / "nats",
            port=port,
            config_text=buses.with_admin(config, password=admin_password),
        )
        system.nats.start()
        stack.callback(system.nats.stop)
        system.admin = await buses.connect(
            system.nats.url, user=buses.ADMIN_USER, password=admin_password
        )
        stack.push_async_callback(system.admin.close)

        if options.kubeconfig is None:
            system.kube = await stack.enter_async_context(
                kubeapi.serve(kubeconfig_path=workdir / "kubeconfig", request_log_limit=200)
            )
            system.kubeconfig = system.kube.kubeconfig_path
            seed_cluster(system, system.kube)
        else:
            system.kubeconfig = options.kubeconfig

        if options.tailscale_client_id and options.tailscale_client_secret:
            system.stand_in_credentials = {}
        else:
            system.control = await stack.enter_async_context(controlapi.serve())
            client = system.control.add_oauth_client(
                scopes=["auth_keys", "devices:core", "dns"], tags=list(options.tags)
            )
            system.stand_in_credentials = {
                "TAILWIRE_TAILSCALE_OAUTH_CLIENT_ID": client.client_id,
                "TAILWIRE_TAILSCALE_OAUTH_CLIENT_SECRET": client.client_secret,
            }

        if options.use_bind:
            system.bind = stack.enter_context(bind.running(zones=options.dns_zones))
        system.otlp = await stack.enter_async_context(otlp.serve())

        if options.real_tailnet and options.use_netns is False:
            raise ValueError("a real tailnet needs network namespaces: use_netns=False")
        use_netns = True if options.real_tailnet else options.use_netns
        if system.kube is not None and netns_wanted(use_netns):
            system.netns = stack.enter_context(netns.NetnsFactory())
        background: _Background | None = None
        if options.real_tailnet:
            missing = real_tailnet_unavailable()
            if system.kube is None or system.netns is None or missing:
                raise RuntimeError(
                    "a real tailnet cannot run here: "
                    f"{missing or 'it needs the emulated Kubernetes API (not kubeconfig)'}"
                )
            net = tailnet.Tailnet(factory=system.netns, workdir=workdir / "tailnet")
            background = _Background(net)
            stack.push_async_callback(background.close)  # before the netns go
            system.tailnet = await background.run(net.start)
            seed_tailnet(system)
        if system.kube is not None:
            system.kubelet = kubelet.GatewayKubelet(
                api=system.kube,
                nodes=options.nodes,
                namespace=launching.GATEWAY_NAMESPACE,
                factory=system.netns,
                pod_ip=system.pod_ip,
                tailnet=system.tailnet,
                state_root=system.gateway_state_root,
            )
            system.kubelet.start()
            stack.push_async_callback(system.kubelet.stop)

        make_processes(system)
        stack.push_async_callback(stop_all, system)
        # The tailnet's peers join while the services start (each takes seconds).
        joined = None
        if background is not None and system.tailnet is not None and options.tailnet_peers:
            net, names = system.tailnet, options.tailnet_peers
            joined = background.run(lambda: start_peers(net, names))
        await start_all(system)
        if joined is not None:
            system.tailnet_peers = await joined
        log.info("tailwire system running in %s (pid %d)", workdir, os.getpid())
        yield system
