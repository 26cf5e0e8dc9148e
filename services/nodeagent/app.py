"""Wiring of the nodeagent: settings -> agent -> broker -> routers -> lifespan. No logic here."""

from __future__ import annotations

import logging
import os

from opentelemetry.sdk.trace import TracerProvider

from tailwire.services.nodeagent import handlers, reconciling
from tailwire.shared import bus, errors, permissions, runtime, settings, subjects

log = logging.getLogger(__name__)


def create(
    *,
    bus_settings: settings.BusSettings | None = None,
    tracer_provider: TracerProvider | None = None,
    node_name: str | None = None,
    dry_run: bool = False,
    node_settings: settings.NodeSettings | None = None,
    network: settings.ClusterNetworkSettings | None = None,
    retry_interval: float = 10.0,
) -> runtime.ServiceRuntime:
    """The nodeagent's runtime, from `TAILWIRE_*` settings unless given.

    Raises ConfigurationError without a node name (`--node NAME` or TAILWIRE_NODE_NAME).
    """
    node_settings = node_settings or settings.NodeSettings()
    network = network or settings.ClusterNetworkSettings()
    node = node_name or node_settings.node_name
    if not node:
        raise errors.ConfigurationError(
            "the nodeagent needs its node's name: pass --node NAME or set TAILWIRE_NODE_NAME"
        )
    agent = reconciling.Agent(
        options=reconciling.Options(
            node=node,
            link_ranges=(network.link_cidr_v4, network.link_cidr_v6),
            proc_root=node_settings.proc_root,
            gateway_state_root=node_settings.gateway_state_root,
            dry_run=dry_run,
            write_sysctls=node_settings.write_gateway_sysctls,
        )
    )
    wiring = handlers.Wiring(agent=agent, retry_interval=retry_interval)

    async def report_privileges() -> None:
        if os.geteuid() != 0:
            log.warning(
                "nodeagent for %s is not root: netlink and nftables changes will fail and "
                "be reported per pod in the acks",
                node,
            )

    service_runtime = runtime.build_app(
        service=subjects.Service.NODEAGENT,
        routers=[wiring.router],
        bus_settings=bus_settings,
        tracer_provider=tracer_provider,
        on_startup=[report_privileges, wiring.reset_consumers],
        after_startup=[wiring.start],
        on_shutdown=[wiring.stop],
        # Confined to its node: replies only on its own inbox prefix; like every service but
        # the renderer, it waits for the streams rather than declaring them.
        inbox_prefix=permissions.inbox_prefix(node),
        # It may not read TAILWIRE_NODES' info (that would list every node and group): it
        # sees the stream through its own plan consumer.
        stream_probes={bus.NODES_STREAM: permissions.plan_consumer(node)},
    )
    wiring.attach(service_runtime.broker)
    return service_runtime
