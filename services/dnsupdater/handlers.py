"""Subscribers: cluster snapshots in -> the view -> a reconcile notification.

Three ephemeral consumers on TAILWIRE_CLUSTER (Services, Gateways, HTTPRoutes) start from
the last message per subject, so a restarted dnsupdater rebuilds its view and converges. A
malformed snapshot fails validation and is dead-lettered by the bus middleware; the service
keeps running. Must not call backends: the reconciler does, off the message path.
"""

from __future__ import annotations

import logging

from faststream.nats import NatsRouter
from faststream.nats.annotations import NatsMessage
from nats.js import JetStreamContext

from tailwire.services.dnsupdater import reconciling, views
from tailwire.shared import bus, subjects
from tailwire.shared.events import cluster

log = logging.getLogger(__name__)


def _caught_up(view: views.ClusterView, kind: subjects.Kind, message: NatsMessage) -> None:
    metadata = message.raw_message.metadata
    if metadata.num_pending == 0:
        view.caught_up(kind)


def build_router(*, view: views.ClusterView, reconciler: reconciling.Reconciler) -> NatsRouter:
    router = NatsRouter()
    stream = bus.stream(bus.CLUSTER_STREAM)
    policy = bus.last_per_subject_policy()

    @router.subscriber(
        subjects.cluster_filter(subjects.Kind.SERVICE), stream=stream, deliver_policy=policy
    )
    async def on_service(snapshot: cluster.ServiceSnapshot, message: NatsMessage) -> None:
        view.put(snapshot)
        _caught_up(view, subjects.Kind.SERVICE, message)
        reconciler.notify()

    @router.subscriber(
        subjects.cluster_filter(subjects.Kind.GATEWAY), stream=stream, deliver_policy=policy
    )
    async def on_gateway(snapshot: cluster.GatewaySnapshot, message: NatsMessage) -> None:
        view.put(snapshot)
        _caught_up(view, subjects.Kind.GATEWAY, message)
        reconciler.notify()

    @router.subscriber(
        subjects.cluster_filter(subjects.Kind.HTTPROUTE), stream=stream, deliver_policy=policy
    )
    async def on_route(snapshot: cluster.HTTPRouteSnapshot, message: NatsMessage) -> None:
        view.put(snapshot)
        _caught_up(view, subjects.Kind.HTTPROUTE, message)
        reconciler.notify()

    return router


async def mark_empty_kinds(
    *, js: JetStreamContext, view: views.ClusterView, reconciler: reconciling.Reconciler
) -> None:
    """Kinds with no snapshot in the stream at start are caught up already."""
    for kind in views.KINDS:
        info = await js.stream_info(
            bus.CLUSTER_STREAM, subjects_filter=subjects.cluster_filter(kind)
        )
        if not info.state.subjects:
            view.caught_up(kind)
    reconciler.notify()
