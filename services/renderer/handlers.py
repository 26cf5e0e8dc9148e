"""The renderer's subscribers and its reconcile loop: messages in, view and inputs updated,
the egress computation run, plans/configs/key requests/status out, objects to the API.

On start every subscriber reads the last message per subject of its stream (ordered,
ephemeral consumers), which rebuilds the cluster view and what the renderer itself published
before; the first computation waits until that backlog is read, so a restart republishes
nothing that did not change. Then it follows. Malformed messages are dead-lettered by the
bus middleware after being counted.
Must not: compute desired state itself (egress/ does), or block on the Kubernetes API
(`adapters.syncing` retries on its own).
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import cast

from faststream.nats import DeliverPolicy, NatsBroker, NatsRouter
from faststream.nats.annotations import NatsMessage
from opentelemetry import context as otel_context

from tailwire.services.renderer import domain, metrics, renderers, transitions
from tailwire.services.renderer import view as view_module
from tailwire.services.renderer.adapters import syncing
from tailwire.services.renderer.egress import options, outputs, rendering, statuses
from tailwire.shared import bus, cancelling, errors, subjects
from tailwire.shared.events import base, gateways, keys, nodes, status

log = logging.getLogger(__name__)

Clock = Callable[[], datetime.datetime]
_Handler = Callable[[NatsMessage], Awaitable[None]]

# name -> (stream, filter subject) of everything the renderer reads.
FEEDS: dict[str, tuple[str, str]] = {
    "cluster": (bus.CLUSTER_STREAM, subjects.cluster_filter()),
    # Every kind's summaries: the egress side's and the computations' (TailscaleGateways).
    "status": (bus.CLUSTER_STREAM, subjects.status_filter()),
    "plans": (bus.NODES_STREAM, subjects.node_plans_filter()),
    "acks": (bus.NODES_STREAM, subjects.node_acks_filter()),
    "configs": (bus.NODES_STREAM, subjects.gateway_config_filter()),
    "keys": (bus.WORK_STREAM, subjects.keys_filter()),
}
_KEY_MODELS: dict[str, type[base.Event]] = {
    "request": keys.KeyRequest,
    "ready": keys.KeyReady,
    "failed": keys.KeyFailed,
    "revoked": keys.KeyRevoked,
}


class Renderer:
    """The renderer's state between messages, and the loop that acts on it."""

    def __init__(
        self,
        *,
        broker: NatsBroker,
        opts: options.Options,
        sync: syncing.ManifestSync | None,
        clock: Clock = base.utcnow,
        catch_up_timeout: float = 30.0,
        computations: Sequence[domain.Renderer] = (),
        max_pause: float = 2.0,
        tombstone_ttl: int | None = None,
    ) -> None:
        self.computations = tuple(computations)
        self.broker = broker
        self.opts = opts
        self.sync = sync
        self.clock = clock
        self.catch_up_timeout = catch_up_timeout
        # After a computation that took T seconds, changes are gathered for min(T, max_pause)
        # before the next one: a lone change is acted on at once, but a stream of them (a
        # 10,000-pod relist) costs about half the renders and plan generations.
        self.max_pause = max_pause
        # Deleted objects' last status summaries expire after this (bus tombstone_ttl).
        self.tombstone_ttl = tombstone_ttl
        self.view = view_module.ClusterView()
        self.published = outputs.Published()
        self.key_events: dict[str, statuses.KeyEvent] = {}
        self._key_seq: dict[str, int] = {}
        # The keyminter's last check of each TailscaleTailnet, by name.
        self.tailnet_checks: dict[str, keys.TailnetChecked] = {}
        self.acks: dict[str, nodes.NodeAck] = {}
        self._backlog: dict[str, int] = {}
        self._seen: dict[str, int] = dict.fromkeys(FEEDS, 0)
        self.caught_up = asyncio.Event()
        self._dirty = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.reconciled = 0  # computations run (tests wait on it)
        self._trace: otel_context.Context | None = None
        self.idle = asyncio.Event()

    # --- start-up: how much backlog is there to read ---------------------------------------

    async def measure_backlog(self) -> None:
        """Count the subjects each feed will deliver first (one message per subject)."""
        js = self.broker.connection.jetstream()
        for feed, (stream, subject) in FEEDS.items():
            info = await js.stream_info(stream, subjects_filter=subject)
            self._backlog[feed] = len(info.state.subjects or {})
        self._check_caught_up()

    def _count(self, feed: str) -> None:
        self._seen[feed] += 1
        if not self.caught_up.is_set():
            self._check_caught_up()

    def _check_caught_up(self) -> None:
        if self._backlog and all(self._seen[f] >= n for f, n in self._backlog.items()):
            log.info("renderer read its backlog: %s", self._backlog)
            self.caught_up.set()

    # --- subscribers -----------------------------------------------------------------------

    def router(self) -> NatsRouter:
        router = NatsRouter()

        def subscribe(feed: str) -> Callable[[_Handler], _Handler]:
            stream, subject = FEEDS[feed]
            return cast(
                Callable[[_Handler], _Handler],
                router.subscriber(
                    subject,
                    stream=bus.stream(stream),
                    deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
                    ordered_consumer=True,
                    title=f"renderer.{feed}",
                ),
            )

        @subscribe("cluster")
        async def on_cluster(message: NatsMessage) -> None:
            try:
                snapshot = view_module.decode_snapshot(message.body)
                if self.view.apply(snapshot):
                    self._changed()
            finally:
                self._count("cluster")

        @subscribe("status")
        async def on_status(message: NatsMessage) -> None:
            # Count after recording (even when decoding fails): the count may complete the
            # backlog, and the backlog's own messages must still be taken as published.
            try:
                summary = bus.decode(status.StatusSummary, message.body)
                if not self.caught_up.is_set():
                    self.published.summaries[message.raw_message.subject] = summary
            finally:
                self._count("status")

        @subscribe("plans")
        async def on_plan(message: NatsMessage) -> None:
            try:
                plan = bus.decode(nodes.NodePlan, message.body)
                if not self.caught_up.is_set():
                    self.published.plans[plan.node] = plan
            finally:
                self._count("plans")

        @subscribe("acks")
        async def on_ack(message: NatsMessage) -> None:
            try:
                ack = bus.decode(nodes.NodeAck, message.body)
                if message.raw_message.subject != subjects.node_ack(ack.node):
                    # A nodeagent may publish on its own node's ack subject only: the subject,
                    # not the body, says which node speaks.
                    raise errors.MessageRejected(
                        f"node: the ack names {ack.node!r} but came on "
                        f"{message.raw_message.subject}"
                    )
                before = self.acks.get(ack.node)
                if before is None or ack.generation >= before.generation:
                    self.acks[ack.node] = ack
                    self._changed()
            finally:
                self._count("acks")

        @subscribe("configs")
        async def on_config(message: NatsMessage) -> None:
            try:
                config = bus.decode(gateways.GatewayConfig, message.body)
                if not self.caught_up.is_set():
                    self.published.configs[config.group] = config
            finally:
                self._count("configs")

        @subscribe("keys")
        async def on_key(message: NatsMessage) -> None:
            try:
                self.on_key_message(message)
            finally:
                self._count("keys")

        return router

    def on_key_message(self, message: NatsMessage) -> None:
        subject = message.raw_message.subject
        try:
            parsed = subjects.parse(subject)
        except errors.SubjectError as exc:
            raise errors.MessageRejected(str(exc)) from exc
        if parsed.event == "tailnet" and parsed.ref is not None:
            self.on_tailnet_checked(bus.decode(keys.TailnetChecked, message.body))
            return
        if parsed.ref is None or parsed.ref.kind != subjects.Kind.EGRESSGROUP:
            return  # another owner kind's keys (the ingress side's)
        event = bus.decode(_KEY_MODELS[parsed.event or ""], message.body)
        name = parsed.ref.name
        if isinstance(event, keys.KeyRequest):
            if not self.caught_up.is_set():
                self.published.key_requests[name] = event
            return
        assert isinstance(event, keys.KeyReady | keys.KeyFailed | keys.KeyRevoked)
        sequence = message.raw_message.metadata.sequence.stream
        if sequence >= self._key_seq.get(name, -1):
            self._key_seq[name] = sequence
            self.key_events[name] = event
            self._changed()

    def on_tailnet_checked(self, event: keys.TailnetChecked) -> None:
        """Keep the newest check per tailnet (redeliveries can bring older ones)."""
        before = self.tailnet_checks.get(event.tailnet)
        if before is not None:
            if before.checked_at > event.checked_at:
                return
            if before.uid == event.uid and event.last_connected is None:
                # A keyminter that restarted into a failure does not know when it last
                # connected; the renderer still does (a recreated tailnet starts afresh).
                event = event.model_copy(update={"last_connected": before.last_connected})
        self.tailnet_checks[event.tailnet] = event
        self._changed()

    def _changed(self) -> None:
        # The computation this change triggers publishes in the trace of the message that
        # caused it (the last one, when several changes are handled together).
        self._trace = otel_context.get_current()
        self._dirty.set()

    # --- the loop --------------------------------------------------------------------------

    async def start(self) -> None:
        self._tasks.append(asyncio.create_task(self._loop(), name="renderer-reconcile"))
        if self.sync is not None:
            self._tasks.append(asyncio.create_task(self.sync.run(), name="renderer-apply"))

    async def stop(self) -> None:
        await cancelling.cancel_and_wait(self._tasks)
        self._tasks.clear()
        if self.sync is not None:
            await self.sync.writer.close()

    async def _loop(self) -> None:
        try:
            async with asyncio.timeout(self.catch_up_timeout):
                await self.caught_up.wait()
        except TimeoutError:
            log.warning(
                "backlog not fully read after %ss (%s of %s); going on",
                self.catch_up_timeout,
                self._seen,
                self._backlog,
            )
            self.caught_up.set()
        self._dirty.set()
        while True:
            self.idle.set()
            await self._dirty.wait()
            self.idle.clear()
            self._dirty.clear()
            trace, self._trace = self._trace, None
            token = otel_context.attach(trace) if trace is not None else None
            started = time.monotonic()
            try:
                await self.reconcile()
                metrics.RECONCILES.labels(outcome="ok").inc()
            except errors.BusError as exc:
                metrics.RECONCILES.labels(outcome="publish_failed").inc()
                log.warning("publishing failed, will retry: %s", exc)
                self._dirty.set()
                await asyncio.sleep(1.0)
            finally:
                elapsed = time.monotonic() - started
                metrics.RECONCILE_SECONDS.observe(elapsed)
                if token is not None:
                    otel_context.detach(token)
            await asyncio.sleep(min(elapsed, self.max_pause))

    def _run_computations(self) -> list[domain.Rendered]:
        """The other computations (ingress); one that fails applies and prunes nothing."""
        source = domain.RenderInput(
            view=self.view,
            cluster_cidrs=self.opts.cluster_cidrs,
            gateway_namespace=self.opts.gateway_namespace,
            cluster_name=self.opts.cluster_name,
            gateway_image=self.opts.gateway_image,
            tailnet_checks=self.tailnet_checks,
        )
        results = []
        for compute in self.computations:
            try:
                results.append(compute(source))
            except Exception:
                log.exception("computation %s failed; its objects are left as they are", compute)
        return results

    async def reconcile(self) -> None:
        result = rendering.render_egress(
            view=self.view,
            opts=self.opts,
            previous=self.published.plans,
            gateway_results={
                (ack.node, gw.group): gw for ack in self.acks.values() for gw in ack.gateways
            },
        )
        decision = outputs.decide(
            result=result,
            published=self.published,
            key_events=self.key_events,
            acks=self.acks,
            now=self.clock(),
        )
        # One output the bus refuses (a plan over the server's max_payload) must not hold back
        # the others: each is published on its own, and the refusals are raised at the end,
        # after the Kubernetes writes, so the loop retries them.
        refused: list[str] = []
        for item in decision.outgoing:
            try:
                await bus.publish(self.broker, item.event, subject=item.subject, msg_id=item.msg_id)
            except errors.BusError as exc:
                log.error("%s not published: %s", item.subject, exc)
                refused.append(item.subject)
                continue
            self.published.record(item)
            metrics.PUBLISHED.labels(area=item.subject.split(".")[2]).inc()
        extra = transitions.stamp(
            domain.combine(self._run_computations()),
            previous=self.published.summaries,
            now=self.clock(),
        )
        for subject, summary in extra.summaries:
            if self.published.summaries.get(subject) == summary:
                continue
            try:
                await bus.publish(self.broker, summary, subject=subject)
            except errors.BusError as exc:
                log.error("%s not published: %s", subject, exc)
                refused.append(subject)
                continue
            self.published.summaries[subject] = summary
            metrics.PUBLISHED.labels(area="status").inc()
        current = {subject for subject, _ in extra.summaries} | {
            outputs.status_subject(name) for name in result.groups
        }
        for subject, retired in domain.retired_summaries(self.published.summaries, current=current):
            await bus.publish(self.broker, retired, subject=subject, ttl=self.tombstone_ttl)
            self.published.summaries[subject] = retired
            metrics.PUBLISHED.labels(area="status").inc()
        if self.sync is not None:
            self.sync.update(
                syncing.Desired(
                    manifests=(*result.manifests, *extra.manifests),
                    prune=(
                        *renderers.egress_prune_scopes(namespace=self.opts.gateway_namespace),
                        *extra.prune,
                    ),
                    statuses=(*decision.statuses, *extra.statuses),
                    finalizers=(*decision.finalizers, *extra.finalizers),
                )
            )
        self.reconciled += 1
        if refused:
            raise errors.BusError(f"{len(refused)} output(s) not published: {', '.join(refused)}")
