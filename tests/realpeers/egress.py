"""One node's egress on a real tailnet: the renderer's plan and config, the nodeagent applying
them, a gateway pod's real tailscaled joined with a key the keyminter minted through
Headscale's API, member pods with a CNI-like `eth0` on a node bridge.

The test plays the kubelet: it makes the pods' namespaces, lays the minted key where the
gateway pod mounts it, starts the gateway's tailscaled with the file the nodeagent wrote,
and sets the gateway's forwarding sysctls as its privileged init container does.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from tailwire.services.keyminter.adapters import headscale_api, timing
from tailwire.services.nodeagent import reconciling
from tailwire.services.renderer import view
from tailwire.services.renderer.egress import options, rendering
from tailwire.shared.events import cluster, gateways, nodes
from tailwire.shared.k8s import labels, names
from tailwire.testing import netns, tailnet

NODE = "node-a"
GROUP = "payments"
NAMESPACE = "payments"
CLUSTER_CIDRS = ("10.244.0.0/16", "10.96.0.0/12")
OPTS = options.Options(cluster_cidrs=CLUSTER_CIDRS, control_url=tailnet.CONTROL_URL)
GATEWAY_SYSCTLS = (
    "net.ipv4.ip_forward=1",
    "net.ipv6.conf.all.forwarding=1",
    "net.ipv4.conf.all.rp_filter=0",
    "net.ipv4.conf.default.rp_filter=0",
)
SELECTOR = {"podSelector": {"matchLabels": {"tailgate.dev/egress": "true"}}}


async def mint_key(
    control: tailnet.Headscale, *, tags: tuple[str, ...] = ("tag:k8s",), ephemeral: bool = True
) -> str:
    """A key minted by the keyminter's Headscale client through the real REST API, with the
    options the renderer's key request for a group carries (tagged, reusable, ephemeral)."""
    assert control.forwarder is not None
    async with httpx.AsyncClient(base_url=control.forwarder.url) as http:
        client = headscale_api.HeadscaleClient(
            http,
            api_key=SecretStr(control.api_key),
            user=None,
            clock=timing.SystemClock(),
            name="test",
        )
        minted = await client.mint_key(
            tags=tags,
            reusable=True,
            ephemeral=ephemeral,
            preauthorized=True,
            expiry_seconds=3600,
            description="tailwire test gateway",
        )
    return minted.secret.get_secret_value()


@dataclasses.dataclass
class Pod:
    name: str
    netns: str
    ip: str
    uid: str


class Node:
    """A node's pods, its gateway, its agent; `render()` runs the real renderer over them."""

    def __init__(self, *, net: tailnet.Tailnet, factory: netns.NetnsFactory, root: Path) -> None:
        self.net = net
        self.factory = factory
        self.root = root
        self.bridge = factory.create()  # the node's side of the pods' CNI veths
        self.factory.run(["ip", "link", "add", "cbr0", "type", "bridge"], netns=self.bridge)
        self.factory.run(["ip", "link", "set", "cbr0", "up"], netns=self.bridge)
        self.factory.add_address(netns=self.bridge, link="cbr0", address="10.244.1.254/24")
        self.pods: list[Pod] = []
        self.gateway_netns = factory.create()
        self.gateway_underlay = net.control.attach(self.gateway_netns)
        for sysctl in GATEWAY_SYSCTLS:
            factory.run(["sysctl", "-qw", sysctl], netns=self.gateway_netns)
        self.agent = reconciling.Agent(
            options=reconciling.Options(
                node=NODE,
                link_ranges=(OPTS.link_cidr_v4, OPTS.link_cidr_v6),
                gateway_state_root=str(root / "gateways"),
            )
        )
        self.gateway: tailnet.Tailscaled | None = None
        self.spec: dict[str, Any] = {"selector": SELECTOR}
        self.generation = 1

    def pod(self, name: str, *, member: bool = True) -> Pod:
        index = len(self.pods) + 1
        pod_netns = self.factory.create()
        self.factory.veth(
            left=pod_netns, right=self.bridge, left_name="eth0", right_name=f"c{index}"
        )
        self.factory.run(["ip", "link", "set", f"c{index}", "master", "cbr0"], netns=self.bridge)
        ip = f"10.244.1.{index}"
        self.factory.add_address(netns=pod_netns, link="eth0", address=f"{ip}/24")
        self.factory.add_route(
            netns=pod_netns, destination="0.0.0.0/0", link="eth0", via="10.244.1.254"
        )
        pod = Pod(name=name, netns=pod_netns, ip=ip, uid=f"uid-{name}" if member else f"x-{name}")
        if member:
            self.pods.append(pod)
        return pod

    def set_spec(self, **fields: Any) -> None:
        self.spec = {"selector": SELECTOR, **fields}
        self.generation += 1

    def render(self, *, said: nodes.GatewayResult | None = None) -> rendering.EgressResult:
        v = view.ClusterView()
        v.apply(cluster.NamespaceSnapshot(meta=cluster.Meta(uid="ns", name=NAMESPACE)))
        v.apply(cluster.NodeSnapshot(meta=cluster.Meta(uid="node", name=NODE)))
        v.apply(
            cluster.EgressGroupSnapshot(
                meta=cluster.Meta(
                    uid="uid-eg", name=GROUP, generation=self.generation,
                    resource_version=str(self.generation),
                ),
                api_version="tailscale.rajsingh.info/v1alpha1",
                spec=self.spec,
            )
        )  # fmt: skip
        v.apply(
            cluster.PodSnapshot(
                meta=cluster.Meta(
                    uid="uid-gateway",
                    namespace=OPTS.gateway_namespace,
                    name=f"tailwire-gw-{GROUP}-x1",
                    labels={labels.EGRESS_GROUP: GROUP},
                    annotations={labels.NETNS: self.gateway_netns},
                ),
                node_name=NODE,
                phase="Running",
            )
        )
        for pod in self.pods:
            v.apply(
                cluster.PodSnapshot(
                    meta=cluster.Meta(
                        uid=pod.uid,
                        namespace=NAMESPACE,
                        name=pod.name,
                        labels={"tailgate.dev/egress": "true"},
                        annotations={labels.NETNS: pod.netns},
                    ),
                    node_name=NODE,
                    phase="Running",
                    pod_ips=(pod.ip,),
                )
            )
        return rendering.render_egress(
            view=v, opts=OPTS, gateway_results={(NODE, GROUP): said} if said else None
        )

    async def reconcile(self, *, generation: int) -> tuple[nodes.NodeAck, gateways.GatewayConfig]:
        """Render (following what the agent's last word on its gateway says, as the renderer
        does with acks), then what the nodeagent does with the plan and the config."""
        result = self.render(said=self.agent.gateway_result(GROUP, ok=True))
        plan = result.plans[NODE].model_copy(update={"generation": generation})
        config = result.groups[GROUP].config
        assert config is not None, result.groups[GROUP]
        ack = await self.agent.apply_plan(plan)
        await self.agent.apply_config(config)
        return ack, config

    def config_path(self, config: gateways.GatewayConfig) -> Path:
        return self.agent.config_dir(config) / names.GATEWAY_CONFIG_FILE

    async def start_gateway(self, *, authkey: str, resolv_conf: str = "") -> tailnet.Tailscaled:
        """Bring the group up on this node: plan and config applied, then the gateway pod."""
        ack, config = await self.reconcile(generation=1)
        self.gateway = self.net.gateway(
            netns=self.gateway_netns,
            statedir=self.agent.config_dir(config),
            config=self.config_path(config),
            authkey=authkey,
            name="gateway",
            resolv_conf=resolv_conf,
        )
        self.gateway.wait_running()
        # With tailscale0 up, the gateway side is complete: apply once more (the agent's retry).
        ack = await self.agent.apply_plan(ack_plan(self, generation=2))
        assert all(p.ok for p in ack.pods), ack
        assert all(g.ok for g in ack.gateways), ack
        return self.gateway


def ack_plan(node: Node, *, generation: int) -> nodes.NodePlan:
    return node.render().plans[NODE].model_copy(update={"generation": generation})


def v4(addresses: tuple[str, ...] | list[str]) -> str:
    return next(a for a in addresses if ipaddress.ip_address(a).version == 4)
