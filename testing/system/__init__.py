"""The whole tailwire system on one machine: for `tailwire demo`, `tailwire dev`, the
end-to-end tests, the failure tests and the benchmarks. One launcher, one interface.

    from tailwire.testing import system

    async with system.running(system.Options(nodes=("node-a", "node-b"))) as s:
        s.create_namespace("payments")
        s.apply_file(Path("examples/egressgroup-payments.yaml"))
        pod = await s.create_member_pod(
            namespace="payments", name="api-0", labels_={"tailgate.dev/egress": "true"}
        )
        ack = await s.wait_for_ack(node=pod.node, pod_uid=pod.uid)
        status = await s.wait_for_group_status("payments", lambda st: st.get("matchedPods"))
        assert s.ping(pod)  # root only: through the gateway to the simulated tailnet peer
        spans = await s.otlp.wait_for_trace(trace_id, services={"watcher", "nodeagent"})
        async with s.capture() as seen: ...   # every tailwire.> message from now on
        await s.kill("renderer"); await s.start("renderer")   # kill -9, start again
        await s.restart("nodeagent/node-a")                    # kill -9 + start + ready
        s.restart_nats()
    # here: every process stopped, every netns removed, the temp dir deleted

What `running(Options(...))` starts (`Options` fields in brackets):
- a real nats-server (`s.nats`, a `natsserver.NatsServer`) configured by
  `permissions.render_nats_config` with one user per service and per node [`nodes`] and
  random passwords (`s.passwords`, `s.credentials(user)`, `s.connect_as(user)`), plus an
  all-seeing test admin used by the helpers (`s.admin`, a nats-py client);
- the Kubernetes API emulator (`s.kube`, `kubeapi.KubeAPI`, over real HTTP; `s.kubeconfig`)
  seeded with the CRDs, the `tailwire-system` namespace and one Node per node; or a real
  cluster [`kubeconfig`] (then `s.kube` is None and the cluster helpers raise);
- the control-API fake (`s.control`) with an OAuth client owning [`tags`], unless real
  credentials are given [`tailscale_client_id`, `tailscale_client_secret`];
- BIND (`s.bind`) serving [`dns_zones`] for the dnsupdater, when [`use_bind`];
- an OTLP/HTTP receiver (`s.otlp`, `tailwire.testing.otlp.OtlpReceiver`) every process
  exports its spans to;
- when root [`use_netns`: None = when available, True = required, False = never]: real
  named netns for member pods and gateway pods (`s.netns`, a `netns.NetnsFactory`); each
  gateway netns has a simulated tailnet peer (100.100.0.2, fd7a:115c:a1e0::2) behind
  `tailscale0`;
- or, with [`real_tailnet`] (root, netns and `make peers`; `real_tailnet_unavailable()` says
  why not): a real tailnet (`s.tailnet`, `tailwire.testing.tailnet.Tailnet`): Headscale,
  seeded as the TailscaleTailnet `TAILNET` with its API key in the Secret `TAILNET_SECRET`,
  one real device per name in [`tailnet_peers`] (`s.tailnet_peers`), and in each gateway
  pod's netns the pod's real tailscaled, joined with the key the keyminter minted;
- `s.kubelet`: plays the DaemonSet controller/kubelet for gateway pods (see `kubelet`);
- every service as its own `python -m tailwire.cli run <service>` process
  (`s.processes`: "watcher", "keyminter", "renderer", "dnsupdater", "nodeagent/<node>";
  each a `processes.ServiceProcess` with `.pid`, `.log_path`, `.log_tail()`), central
  services first (they declare the streams), then one nodeagent per node with its own
  confined NATS user and gateway state root under the temp dir (`s.workdir`).

Helpers: `create_namespace`, `apply`, `apply_file`, `create_member_pod` -> `MemberPod`,
`delete_pod`, `group_status`, `wait_for_group_status`, `last_plan`, `last_ack`,
`wait_for_ack`, `capture`, `ping`, `kill`, `start`, `restart`, `restart_nats`, and
`eventually(probe, within=...)`. After the block, `s.exit_codes` holds each process's exit
code on SIGTERM (None: it had to be killed) and `s.unclean_logs` the end of the log of each
that did not exit 0 (with its thread stacks when it ignored SIGTERM).
`Options(kubeconfig=..., nodes=())` runs the central services against a cluster the launcher
does not own: nothing is seeded there; `service_kubeconfigs={"renderer": path, ...}` gives a
central service its own identity there (a ServiceAccount's token, so its RBAC applies; a
nodeagent's key is its NATS user, `permissions.nodeagent_user(node)`). With `nodes` given,
a nodeagent runs for each as well, but no kubelet stand-in and no netns: the caller plays the
kubelet on that cluster (gateway pods, their netns and tailscaled, in the node's
`s.gateway_state_root(node)`), and `tailnet_objects(headscale, tags=...)` are the Secret and
TailscaleTailnet to apply there for a Headscale of its own.

Must not: be imported by services (import-linter: testing sits above them), or leave a
process, a netns or a file behind, whatever happens inside the block.
"""

from .buses import ADMIN_USER, Capture, Captured
from .kubelet import PEER_IPV4, PEER_IPV6, GatewayKubelet, GatewayPod
from .launching import (
    CENTRAL_SERVICES,
    GATEWAY_NAMESPACE,
    TAILNET,
    TAILNET_SECRET,
    MemberPod,
    Options,
    System,
    eventually,
)
from .processes import ServiceNotReady, ServiceProcess
from .starting import real_tailnet_unavailable, running, tailnet_objects

__all__ = [
    "ADMIN_USER",
    "CENTRAL_SERVICES",
    "GATEWAY_NAMESPACE",
    "PEER_IPV4",
    "PEER_IPV6",
    "TAILNET",
    "TAILNET_SECRET",
    "Capture",
    "Captured",
    "GatewayKubelet",
    "GatewayPod",
    "MemberPod",
    "Options",
    "ServiceNotReady",
    "ServiceProcess",
    "System",
    "eventually",
    "real_tailnet_unavailable",
    "running",
    "tailnet_objects",
]
