"""Proof 8 of issue 13, the half with a node: on the real kube-apiserver, a pod created through
the API ends acked by its node's nodeagent, with real tailscaled in its gateway.

A kube-apiserver of its own (the services watch the whole cluster), prepared as a user would:
the CRDs of deploy/crds, deploy/base's namespace, ServiceAccounts and grants, a Node `node-a`
(its InternalIP and Ready condition written through /status, as its kubelet does). A real
Headscale (`tailnet.Tailnet`) with a real device `db`, registered as the TailscaleTailnet
`headscale` with its API key in a Secret (`system.tailnet_objects`), and the demo's group
(examples/demo/egressgroup-headscale.yaml: the seed's payments selector on that tailnet).

The five services run as `tailwire run` processes (testing/system, `Options(kubeconfig=...,
nodes=("node-a",))`): each central one with a bound token of its own ServiceAccount, so every
call it makes is authorized by deploy/base's RBAC, and the nodeagent of node-a with its own
confined NATS user and the token of `tailwire-nodeagent`, which is granted nothing (it needs
no Kubernetes API).

The test plays the kubelet of node-a and the DaemonSet controller, through the real API only:
- the member pod `payments/api-0` is created with the annotation `tailwire.dev/netns` naming a
  netns with a CNI-like eth0, then set Running with its podIP through /status;
- once the renderer's gateway DaemonSet selects node-a (the renderer labels the Node), the
  gateway pod is created from the DaemonSet's template (validated by the real server,
  PodSecurity admission included), Pending, bound to node-a, in a netns on Headscale's
  underlay with the sysctls its privileged init container sets; once its volumes can be
  mounted (the keyminter's authkey Secret, the config file the nodeagent writes into the
  hostPath state dir) its real tailscaled starts as the container does, and the pod is set
  Running through /status.

Asserted: the nodeagent acks its last plan with the member and the gateway applied (an ack
made while tailscaled is still starting fails the gateway, `tailscale0` being down: the agent
applies the plan again on its 10 s retry timer); the member pings `db` (v4 and v6) through
the gateway; Headscale lists `tailwire-payments-node-a`, online, with the group's tag, and the
gateway runs the config the nodeagent wrote; the group's status, read with the admin's
client, is Ready=True with the member, the node and the gateway's hostname; no service logged
a warning or an error (but that the Gateway API CRDs are not installed); every service
stopped cleanly. About 20 s on two cores.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from tailwire.services.renderer.egress import manifests
from tailwire.shared import permissions
from tailwire.shared.events import nodes as node_events
from tailwire.shared.k8s import labels, names
from tailwire.testing import kubeapiserver, netns, system, tailnet

pytestmark = [pytest.mark.real_peers, pytest.mark.root, pytest.mark.slow]

ROOT = kubeapiserver.CRDS.parents[1]
NS = system.GATEWAY_NAMESPACE
NODE = "node-a"
GROUP = "payments"
MEMBER_IP = "10.244.0.10"
GATEWAY_IP = "10.244.0.11"
NODE_IP = "192.168.77.10"
PEER = "db"
RBAC_KINDS = {
    "Namespace",
    "ServiceAccount",
    "Role",
    "ClusterRole",
    "RoleBinding",
    "ClusterRoleBinding",
}
GROUP_PATH = f"/apis/tailscale.rajsingh.info/v1alpha1/egressgroups/{GROUP}"
TAILNET_PATH = f"/apis/gateway.tailscale.com/v1alpha1/tailscaletailnets/{system.TAILNET}"
DAEMONSET = f"/apis/apps/v1/namespaces/{NS}/daemonsets/{names.gateway_workload(GROUP)}"
SECRET = f"/api/v1/namespaces/{NS}/secrets/{names.authkey_secret(GROUP)}"
NODE_PATH = f"/api/v1/nodes/{NODE}"
MERGE = "application/merge-patch+json"
HOSTNAME = f"tailwire-{GROUP}-{NODE}"
COMPLAINTS = ("WARNING", "ERROR", "CRITICAL")
# The only warnings expected: the Gateway API CRDs are not installed on this server.
EXPECTED_WARNINGS = ("gateway is not served", "httproute is not served")

JSON = dict[str, Any]


def prepare(server: kubeapiserver.KubeAPIServer) -> dict[str, Path]:
    """The cluster before tailwire starts; a kubeconfig per service (keyed as the launcher's
    `service_kubeconfigs` wants: a central service's name, a nodeagent's NATS user)."""
    kubeapiserver.install_crds(server)
    for document in kubeapiserver.kustomize(ROOT / "deploy" / "base"):
        if document["kind"] in RBAC_KINDS:
            server.apply(document)
    server.apply(
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": NODE,
                "labels": {"kubernetes.io/hostname": NODE, "kubernetes.io/os": "linux"},
            },
        }
    )
    node_status = {
        "addresses": [{"type": "InternalIP", "address": NODE_IP}],
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
    }
    server.request("PATCH", f"{NODE_PATH}/status", body={"status": node_status}, content_type=MERGE)
    kubeconfigs = {
        service: server.service_account_kubeconfig(NS, f"tailwire-{service}")
        for service in system.CENTRAL_SERVICES
    }
    kubeconfigs[permissions.nodeagent_user(NODE)] = server.service_account_kubeconfig(
        NS, "tailwire-nodeagent"
    )
    return kubeconfigs


def set_running(server: kubeapiserver.KubeAPIServer, path: str, *, ip: str) -> None:
    """What the kubelet reports once the pod's containers run: phase Running, its podIP."""
    running = {
        "phase": "Running",
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "conditions": [{"type": "Ready", "status": "True"}],
    }
    server.request("PATCH", f"{path}/status", body={"status": running}, content_type=MERGE)


def create_member(server: kubeapiserver.KubeAPIServer, *, netns_name: str) -> JSON:
    server.create_namespace(GROUP)
    pod = server.request(
        "POST",
        f"/api/v1/namespaces/{GROUP}/pods",
        body={
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "api-0",
                "namespace": GROUP,
                "labels": {"tailgate.dev/egress": "true"},
                "annotations": {labels.NETNS: netns_name},
            },
            "spec": {"nodeName": NODE, "containers": [{"name": "app", "image": "app"}]},
        },
    )
    set_running(server, f"/api/v1/namespaces/{GROUP}/pods/api-0", ip=MEMBER_IP)
    return pod


def selects_node(server: kubeapiserver.KubeAPIServer) -> JSON | None:
    """The gateway DaemonSet once its nodeSelector selects node-a (the DaemonSet controller's
    question)."""
    ds = server.get(DAEMONSET)
    node = server.get(NODE_PATH) or {}
    if ds is None:
        return None
    selector = ds["spec"]["template"]["spec"].get("nodeSelector") or {}
    have = node["metadata"].get("labels") or {}
    return ds if all(have.get(k) == v for k, v in selector.items()) else None


def create_gateway_pod(server: kubeapiserver.KubeAPIServer, ds: JSON, *, netns_name: str) -> str:
    """The DaemonSet controller's pod for node-a (bound there at once, as a DaemonSet pod is
    by its node affinity), Pending; the netns annotation stands in for the runtime's sandbox.
    Its path."""
    template = ds["spec"]["template"]
    pod = server.request(
        "POST",
        f"/api/v1/namespaces/{NS}/pods",
        body={
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "generateName": f"{ds['metadata']['name']}-",
                "namespace": NS,
                "labels": dict(template["metadata"]["labels"]),
                "annotations": {labels.NETNS: netns_name},
                "ownerReferences": [
                    {
                        "apiVersion": "apps/v1",
                        "kind": "DaemonSet",
                        "name": ds["metadata"]["name"],
                        "uid": ds["metadata"]["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": {**template["spec"], "nodeName": NODE},
        },
    )
    return f"/api/v1/namespaces/{NS}/pods/{pod['metadata']['name']}"


def host_state_dir(s: system.System, ds: JSON) -> Path:
    """The DaemonSet's hostPath state dir on node-a: under its nodeagent's state root."""
    volumes = ds["spec"]["template"]["spec"]["volumes"]
    host_path = next(v["hostPath"]["path"] for v in volumes if v["name"] == "state")
    return s.gateway_state_root(NODE) / PurePosixPath(host_path).relative_to(
        names.GATEWAY_STATE_ROOT
    )


def mountable_key(server: kubeapiserver.KubeAPIServer, config: Path) -> str | None:
    """The authkey, once the kubelet could mount both volumes tailscaled reads: the
    keyminter's Secret and the config file the nodeagent wrote."""
    secret = server.get(SECRET) or {}
    encoded = (secret.get("data") or {}).get(names.AUTHKEY_SECRET_KEY)
    if not encoded or not config.is_file() or config.stat().st_size == 0:
        return None
    return base64.b64decode(encoded).decode()


async def acked(s: system.System, *, pod_uid: str) -> node_events.NodeAck | None:
    """node-a's last ack, once it applied the member and its gateway. An ack made while the
    gateway's tailscaled is still starting fails the gateway (`tailscale0` not up yet): the
    nodeagent applies the plan again on its retry timer."""
    ack = await s.last_ack(NODE)
    if ack is None or not any(p.pod_uid == pod_uid and p.ok for p in ack.pods):
        return None
    return ack if ack.gateways and all(g.ok for g in ack.gateways) else None


def ping(factory: netns.NetnsFactory, *, source: str, address: str, within: float = 30.0) -> bool:
    """Whether `address` answers from `source` within `within` s (the first packets of a new
    WireGuard path may be lost while the peers find each other)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if factory.ping(netns=source, address=address, count=1, wait=1):
            return True
    return False


def ready(found: JSON | None) -> JSON | None:
    written = (found or {}).get("status") or {}
    conditions = [c for c in written.get("conditions") or [] if c["type"] == "Ready"]
    return found if conditions and conditions[0]["status"] == "True" else None


def complaints(log: Path) -> list[str]:
    found = []
    for line in log.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue  # FastStream's own plain start-up lines
        if not isinstance(record, dict) or record.get("level") not in COMPLAINTS:
            continue
        if not str(record.get("msg")).startswith(EXPECTED_WARNINGS):
            found.append(f"{record.get('level')} {record.get('msg')}")
    return found


@pytest.mark.timeout(180)
async def test_a_pod_created_through_the_real_api_is_acked_with_real_tailscaled_in_its_gateway(
    real_tailnet: tailnet.Tailnet, netns_factory: netns.NetnsFactory
) -> None:
    with kubeapiserver.running() as server:
        kubeconfigs = prepare(server)
        for document in system.tailnet_objects(real_tailnet.control, tags=("tag:k8s",)):
            server.apply(document)
        demo_group = ROOT / "examples" / "demo" / "egressgroup-headscale.yaml"
        for document in yaml.safe_load_all(demo_group.read_text()):
            server.apply(document)
        # The pods' sandboxes: a member netns with a CNI-like eth0, a gateway netns on the
        # underlay with what the gateway pod's privileged init container sets.
        member_netns = netns_factory.create()
        netns_factory.wire_cni_eth0(netns=member_netns, ip=MEMBER_IP)
        gateway_netns = netns_factory.create()
        real_tailnet.control.attach(gateway_netns)
        netns_factory.set_gateway_sysctls(gateway_netns)

        options = system.Options(
            kubeconfig=server.kubeconfig_path, nodes=(NODE,), service_kubeconfigs=kubeconfigs
        )
        gateway: tailnet.Tailscaled | None = None
        # The tailnet's device `db` joins while the services start.
        joining = asyncio.ensure_future(asyncio.to_thread(real_tailnet.peer, PEER))
        try:
            async with system.running(options) as s:
                assert sorted(s.processes) == sorted(
                    [*system.CENTRAL_SERVICES, f"nodeagent/{NODE}"]
                )
                try:
                    db = await joining
                    tailnet_ready = await system.eventually(
                        lambda: ready(server.get(TAILNET_PATH)), within=30, what="the tailnet Ready"
                    )
                    assert tailnet_ready["status"]["conditions"][0]["reason"] == "Connected"

                    # The member pod, through the API; Running once its sandbox is up.
                    member = create_member(server, netns_name=member_netns)

                    # The DaemonSet controller: the renderer's DaemonSet selects node-a.
                    ds = await system.eventually(
                        lambda: selects_node(server),
                        within=45,
                        what="the gateway DaemonSet on node-a",
                    )
                    assert (server.get(NODE_PATH) or {})["metadata"]["labels"].get(
                        manifests.node_label(GROUP)
                    ) == "true"
                    gateway_pod = create_gateway_pod(server, ds, netns_name=gateway_netns)

                    # The kubelet: tailscaled starts once its volumes can be mounted.
                    state_dir = host_state_dir(s, ds)
                    config = state_dir / names.GATEWAY_CONFIG_FILE
                    authkey = await system.eventually(
                        lambda: mountable_key(server, config),
                        within=60,
                        what=f"the authkey Secret and the nodeagent's {config}",
                    )
                    gateway = await asyncio.to_thread(
                        lambda: real_tailnet.gateway(
                            netns=gateway_netns,
                            statedir=state_dir,
                            config=config,
                            authkey=authkey,
                            name=f"gateway {GROUP} on {NODE}",
                        )
                    )
                    await asyncio.to_thread(gateway.wait_running)
                    set_running(server, gateway_pod, ip=GATEWAY_IP)

                    # The nodeagent acks the plan with the member applied and its gateway ready.
                    uid = member["metadata"]["uid"]
                    ack = await system.eventually(
                        lambda: acked(s, pod_uid=uid),
                        within=60,
                        what="the member and gateway acked",
                    )
                    assert ack.gateways[0].hostname == HOSTNAME, ack
                    plan = await s.last_plan(NODE)
                    assert plan is not None
                    assert ack.generation == plan.generation, (ack, plan)

                    # Real packets: member netns -> ts0 -> gateway netns -> WireGuard -> db.
                    for address in (db.ipv4(), db.ipv6()):
                        assert ping(netns_factory, source=member_netns, address=address), (
                            f"the member cannot ping {PEER} at {address}\n"
                            f"{real_tailnet.diagnostics()}\n{s.nodeagent(NODE).log_tail()}"
                        )

                    # Headscale lists the gateway under its per-node name, with the group's tag;
                    # tailscaled runs the config the nodeagent wrote (prefs through the LocalAPI).
                    device = real_tailnet.control.node(HOSTNAME)
                    assert device.tags == ("tag:k8s",), device
                    assert device.online, device
                    prefs = gateway.prefs()
                    assert prefs["Hostname"] == HOSTNAME
                    assert prefs["ControlURL"] == tailnet.CONTROL_URL

                    # The group's status, as the admin reads it.
                    group = await system.eventually(
                        lambda: ready(server.get(GROUP_PATH)), within=30, what="the group Ready"
                    )
                    written = group["status"]
                    assert written["matchedPods"] == 1, written
                    assert written["gatewayNodes"] == [NODE], written
                    assert written["gatewayHostnames"] == [HOSTNAME], written
                    assert written["observedGeneration"] == group["metadata"]["generation"]
                    reasons = {c["type"]: (c["status"], c["reason"]) for c in written["conditions"]}
                    assert reasons["KeyReady"] == ("True", "KeyIssued"), written

                    found = {name: complaints(p.log_path) for name, p in s.processes.items()}
                finally:
                    # Stopped before the launcher removes the state dir it runs in.
                    if gateway is not None:
                        await asyncio.to_thread(gateway.close)
        finally:
            # A thread cannot be cancelled: whatever it started must be known to the tailnet
            # (the fixture stops it) before the test ends.
            await asyncio.wait([joining])
    logs = "\n".join(f"--- {name}\n{tail}" for name, tail in s.unclean_logs.items())
    assert all(code == 0 for code in s.exit_codes.values()), f"{s.exit_codes}\n{logs}"
    assert found == {name: [] for name in found}, found
