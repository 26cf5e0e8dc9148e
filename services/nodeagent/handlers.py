"""Subscribers of the nodeagent: its node's plan in -> `reconciling.Agent` -> ack out.

It reads through the two JetStream consumers `shared.permissions` grants a confined
nodeagent: `plan_consumer(node)`, filtered to `subjects.node_plan(node)`, and
`gateways_consumer(node)`, filtered to the gateway configs; both are deleted and recreated
on start, so the agent begins from the latest plan and the latest config of every group
(the stream keeps the last message per subject). Configs of groups the node does not host
are remembered, not applied; when a plan makes the node host a group, its remembered config
is applied then, and the last ack is re-published with the gateway's new config hash.
Plans older than the one applied are ignored. A plan that failed for some
pod is re-applied every `retry_interval` seconds until it converges. Malformed messages are
dead-lettered by the bus middleware; nothing here touches the kernel directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import nats.js.errors
from faststream.nats import NatsBroker, NatsRouter, PullSub

from tailwire.services.nodeagent import metrics, reconciling
from tailwire.shared import bus, cancelling, errors, permissions, subjects
from tailwire.shared.events import base, gateways, nodes

log = logging.getLogger(__name__)


class Wiring:
    """The router, the consumers' reset on start, and the retry loop."""

    def __init__(
        self,
        *,
        agent: reconciling.Agent,
        retry_interval: float = 10.0,
        exit_node_interval: float = 5.0,
    ) -> None:
        self.agent = agent
        self.node = agent.options.node
        self.retry_interval = retry_interval
        self.exit_node_interval = exit_node_interval
        self.router = NatsRouter()
        self.broker: NatsBroker | None = None
        self.hosted: set[str] = set()
        self.configs: dict[str, gateways.GatewayConfig] = {}
        self._tasks: list[asyncio.Task[None]] = []
        # Pull fetches reply on this node's private inboxes (FastStream's default would be
        # `_INBOX.`, which a nodeagent confined by shared.permissions may not subscribe to).
        self.fetch_inbox_prefix = f"{permissions.inbox_prefix(self.node)}.".encode()

        @self.router.subscriber(
            subjects.node_plan(self.node),
            stream=bus.stream(bus.NODES_STREAM),
            durable=permissions.plan_consumer(self.node),
            pull_sub=PullSub(batch_size=1),
            deliver_policy=bus.last_per_subject_policy(),
            inbox_prefix=self.fetch_inbox_prefix,
        )
        async def on_plan(plan: nodes.NodePlan) -> None:
            await self.handle_plan(plan)

        @self.router.subscriber(
            subjects.gateway_config_filter(),
            stream=bus.stream(bus.NODES_STREAM),
            durable=permissions.gateways_consumer(self.node),
            pull_sub=PullSub(batch_size=16),
            deliver_policy=bus.last_per_subject_policy(),
            inbox_prefix=self.fetch_inbox_prefix,
        )
        async def on_config(config: gateways.GatewayConfig) -> None:
            await self.handle_config(config)

    def attach(self, broker: NatsBroker) -> None:
        self.broker = broker

    async def reset_consumers(self) -> None:
        """Delete our two consumers so they restart from the latest message per subject."""
        if self.broker is None:
            return
        js = (await self.broker.connect()).jetstream()
        for name in (
            permissions.plan_consumer(self.node),
            permissions.gateways_consumer(self.node),
        ):
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await js.delete_consumer(bus.NODES_STREAM, name)

    async def handle_plan(self, plan: nodes.NodePlan) -> None:
        last = self.agent.last_plan
        if last is not None and plan.generation < last.generation:
            log.info("ignoring plan generation %d: %d is applied", plan.generation, last.generation)
            return
        ack = await self.agent.apply_plan(plan)
        record(ack)
        failed = [p for p in ack.pods if not p.ok]
        log.info(
            "applied plan generation %d: %d pods (%d failed), %d writes in %.1f ms",
            plan.generation,
            len(ack.pods),
            len(failed),
            ack.netlink_writes,
            ack.duration_ms,
        )
        await self.publish_ack(ack)
        newly = {g.group for g in plan.gateways} - self.hosted
        self.hosted = {g.group for g in plan.gateways}
        renamed = {c.group for c in self.agent.stale_configs()} & self.hosted
        for group in sorted(newly | renamed):
            if group in self.configs:
                self.agent.apply_config_soon(self.configs[group], then=self.restate_ack)

    async def publish_ack(self, ack: nodes.NodeAck) -> None:
        if self.agent.options.dry_run or self.broker is None:
            return
        await bus.publish(
            self.broker,
            ack,
            subject=subjects.node_ack(self.node),
            msg_id=f"{self.node}:{ack.generation}:{ack.applied_at.isoformat()}",
        )

    async def handle_config(self, config: gateways.GatewayConfig) -> None:
        if gateways.config_hash(config.config) != config.hash:
            raise errors.MessageRejected(
                f"hash: {config.hash!r} does not match the config of group {config.group!r}"
            )
        known = self.configs.get(config.group)
        if known is not None and config.generation < known.generation:
            return
        self.configs[config.group] = config
        if config.group in self.hosted:
            self.agent.apply_config_soon(config, then=self.restate_ack)

    async def restate_ack(self, config: gateways.GatewayConfig) -> None:
        """Re-publish the last ack with the gateway's new config hash and exit node (same
        generation, no netlink writes), so the renderer sees which config each gateway runs."""
        await self.restate_gateways({config.group}, hashes={config.group: config.hash})

    async def restate_gateways(
        self, groups: set[str], *, hashes: dict[str, str] | None = None
    ) -> None:
        ack = self.agent.last_ack
        if ack is None or not groups & {g.group for g in ack.gateways}:
            return
        restated = ack.model_copy(
            update={
                "gateways": tuple(
                    self.agent.gateway_result(
                        g.group, ok=g.ok, error=g.error, config_hash=(hashes or {}).get(g.group)
                    )
                    if g.group in groups
                    else g
                    for g in ack.gateways
                ),
                # Nothing was written for any pod either: a restated ack must not count
                # the original apply's writes a second time.
                "pods": tuple(p.model_copy(update={"writes": 0}) for p in ack.pods),
                "applied_at": base.utcnow(),
                "netlink_writes": 0,
            }
        )
        self.agent.last_ack = restated
        await self.publish_ack(restated)

    async def refresh_exit_nodes(self) -> None:
        """Resolve the exit nodes again every `exit_node_interval` (peers come and go)."""
        while True:
            await self.agent.sleep(self.exit_node_interval)
            changed = await self.agent.refresh_exit_nodes()
            if changed:
                await self.restate_gateways(set(changed))

    async def retry_failures(self) -> None:
        """Re-apply the last plan while some pod or gateway failed (its netns may appear)."""
        while True:
            await self.agent.sleep(self.retry_interval)
            plan = self.agent.last_plan
            if plan is None or not self.agent.needs_retry:
                continue
            try:
                ack = await self.agent.apply_plan(plan)
                record(ack)
                await self.publish_ack(ack)
            except errors.TailwireError as exc:
                log.warning("re-applying plan generation %d failed: %s", plan.generation, exc)

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self.retry_failures(), name="tailwire-retry"),
            asyncio.create_task(self.refresh_exit_nodes(), name="tailwire-exit-nodes"),
        ]

    async def stop(self) -> None:
        await cancelling.cancel_and_wait(self._tasks)
        self._tasks = []
        await self.agent.close()


def record(ack: nodes.NodeAck) -> None:
    """Count one plan application in the nodeagent's metrics."""
    failed = sum(not p.ok for p in ack.pods) + sum(not g.ok for g in ack.gateways)
    metrics.APPLIES.labels(outcome="failed" if failed else "ok").inc()
    metrics.APPLY_SECONDS.observe(ack.duration_ms / 1000)
    metrics.WRITES.inc(ack.netlink_writes)
    metrics.PODS.labels(result="ok").set(sum(p.ok for p in ack.pods))
    metrics.PODS.labels(result="failed").set(sum(not p.ok for p in ack.pods))
    metrics.GENERATION.set(ack.generation)
