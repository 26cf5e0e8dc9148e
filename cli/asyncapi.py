"""`tailwire asyncapi`: the bus's subject reference, one AsyncAPI 3.0 document from the apps.

Each service's FastStream runtime is built exactly as `tailwire run` builds it, without
connecting, and FastStream's AsyncAPI generator describes its subscribers. What a service
publishes goes through `bus.publish`, which FastStream cannot see, so this module declares a
documentation-only publisher per published subject (`broker.publisher(..., schema=Model)`)
on that service's broker: those brokers are never started. The per-service documents are
merged into one, every channel, operation and message prefixed with its service
(`renderer.`, `nodeagent.`...). A nodeagent subscribes to its own node's subjects; the
document shows them as `tailwire.v1.node.*.plan`.

Must not: connect to anything, or be the only place a subject is spelled (subjects are
built by `tailwire.shared.subjects`).
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any, TextIO

import yaml
from faststream.nats import NatsBroker
from faststream.specification import AsyncAPI
from opentelemetry.sdk.trace import TracerProvider

from tailwire.services.dnsupdater import app as dnsupdater_app
from tailwire.services.dnsupdater import config as dns_config
from tailwire.services.keyminter import app as keyminter_app
from tailwire.services.nodeagent import app as nodeagent_app
from tailwire.services.renderer import app as renderer_app
from tailwire.services.watcher import app as watcher_app
from tailwire.shared import runtime, settings, subjects, telemetry
from tailwire.shared.events import base, cluster, deadletter, dns, gateways, keys, nodes, status

# A node name no real subject contains; replaced by the wildcard in the document.
_NODE = "node-placeholder"
_NATS_URL = "nats://tailwire-nats.tailwire-system:4222"


@dataclasses.dataclass(frozen=True, kw_only=True)
class Published:
    subject: str
    model: type[base.Event]
    description: str


_SNAPSHOTS: dict[subjects.Kind, type[base.Event]] = {
    subjects.Kind.POD: cluster.PodSnapshot,
    subjects.Kind.NAMESPACE: cluster.NamespaceSnapshot,
    subjects.Kind.NODE: cluster.NodeSnapshot,
    subjects.Kind.SERVICE: cluster.ServiceSnapshot,
    subjects.Kind.GATEWAY: cluster.GatewaySnapshot,
    subjects.Kind.HTTPROUTE: cluster.HTTPRouteSnapshot,
    subjects.Kind.EGRESSGROUP: cluster.EgressGroupSnapshot,
    subjects.Kind.TAILSCALEGATEWAY: cluster.TailscaleGatewaySnapshot,
    subjects.Kind.TAILSCALETAILNET: cluster.TailscaleTailnetSnapshot,
}

PUBLISHED: dict[subjects.Service, tuple[Published, ...]] = {
    subjects.Service.WATCHER: tuple(
        Published(
            subject=subjects.cluster_filter(kind),
            model=model,
            description=f"{kind} snapshots on `<namespace or _>.<name>`, last per subject; "
            "a deletion is a tombstone (`deleted: true`). Msg-Id `<uid>:<resourceVersion>`.",
        )
        for kind, model in _SNAPSHOTS.items()
    ),
    subjects.Service.RENDERER: (
        Published(
            subject=subjects.node_plans_filter(),
            model=nodes.NodePlan,
            description="A node's full desired state, numbered by generation.",
        ),
        Published(
            subject=subjects.gateway_config_filter(),
            model=gateways.GatewayConfig,
            description="A group's rendered tailscaled config (no secrets) and its hash.",
        ),
        Published(
            subject=subjects.keys_filter("request"),
            model=keys.KeyRequest,
            description="Key work for the keyminter (`revoke: true` when a group goes away).",
        ),
        Published(
            subject=subjects.status_filter(),
            model=status.StatusSummary,
            description="A status summary for integrations, last per subject.",
        ),
    ),
    subjects.Service.KEYMINTER: (
        Published(
            subject=subjects.keys_filter("ready"),
            model=keys.KeyReady,
            description="A key is in its Secret (names the Secret and expiry, never the key).",
        ),
        Published(
            subject=subjects.keys_filter("failed"),
            model=keys.KeyFailed,
            description="A key request failed; `retryable` says whether it comes back.",
        ),
        Published(
            subject=subjects.keys_filter("revoked"),
            model=keys.KeyRevoked,
            description="An owner's keys and devices are gone.",
        ),
        Published(
            subject=subjects.keys_filter("tailnet"),
            model=keys.TailnetChecked,
            description="A TailscaleTailnet's control API checked with its Secret's credentials "
            "(on a new outcome, else at most hourly).",
        ),
    ),
    subjects.Service.DNSUPDATER: (
        Published(
            subject=subjects.dns_filter(),
            model=dns.DnsChanged,
            description="Records added and removed in a zone, per backend.",
        ),
    ),
    subjects.Service.NODEAGENT: (
        Published(
            subject=subjects.node_ack(_NODE),
            model=nodes.NodeAck,
            description="The generation a node applied, per-pod and per-gateway results.",
        ),
    ),
}


# The renderer reads raw messages (it counts them before decoding): what each feed carries.
RENDERER_FEEDS: dict[str, tuple[type[base.Event], ...]] = {
    "cluster": tuple(_SNAPSHOTS.values()),
    "status": (status.StatusSummary,),
    "plans": (nodes.NodePlan,),
    "acks": (nodes.NodeAck,),
    "configs": (gateways.GatewayConfig,),
    "keys": (keys.KeyRequest, keys.KeyReady, keys.KeyFailed, keys.KeyRevoked, keys.TailnetChecked),
}


def _declare(broker: NatsBroker, service: subjects.Service) -> None:
    for item in (
        *PUBLISHED[service],
        Published(
            subject=subjects.deadletter(service),
            model=deadletter.DeadLetter,
            description="A message this service rejected, with the reason (field named).",
        ),
    ):
        broker.publisher(
            item.subject,
            title=f"{item.subject}:{item.model.__name__}",
            description=item.description,
            schema=item.model,
            include_in_schema=True,
        )


def service_brokers() -> dict[subjects.Service, NatsBroker]:
    """Every service's broker, built as `tailwire run` builds it but never connected."""
    bus_settings = settings.BusSettings(nats_url=_NATS_URL)

    def tracing(service: subjects.Service) -> TracerProvider:
        return telemetry.setup_tracing(
            service_name=f"tailwire-{service}", exporter="none", set_global=False
        )

    svc = subjects.Service
    runtimes: dict[subjects.Service, runtime.ServiceRuntime] = {
        svc.WATCHER: watcher_app.wire(
            bus_settings=bus_settings, tracer_provider=tracing(svc.WATCHER)
        ).runtime,
        svc.RENDERER: renderer_app.build(
            bus_settings=bus_settings, tracer_provider=tracing(svc.RENDERER)
        ).runtime,
        svc.KEYMINTER: keyminter_app.create(
            bus_settings=bus_settings, tracer_provider=tracing(svc.KEYMINTER)
        ),
        # Annotation management on, so the dnsupdater is not idle and has its subscribers.
        svc.DNSUPDATER: dnsupdater_app.wire(
            bus_settings=bus_settings,
            tracer_provider=tracing(svc.DNSUPDATER),
            dns_settings=dns_config.DnsUpdaterSettings(external_dns=True),
        ).runtime,
        svc.NODEAGENT: nodeagent_app.create(
            bus_settings=bus_settings, tracer_provider=tracing(svc.NODEAGENT), node_name=_NODE
        ),
    }
    return {service: built.broker for service, built in runtimes.items()}


def _named(service: str, name: str) -> str:
    name = name.replace(_NODE, "*")
    return name if name.startswith(f"{service}.") else f"{service}.{name}"


def _prefixed(document: Any, service: str) -> Any:
    """Rename channels, operations and messages `<service>.<name>` and fix every $ref."""
    sections = ("#/channels/", "#/operations/", "#/components/messages/")

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            out = {}
            for key, value in node.items():
                if key == "$ref" and isinstance(value, str):
                    for section in sections:
                        if value.startswith(section):
                            value = section + _named(service, value[len(section) :])
                    out[key] = value.replace(_NODE, "%2A")
                else:
                    out[key] = walk(value)
            return out
        if isinstance(node, list):
            return [walk(v) for v in node]
        if isinstance(node, str):
            return node.replace(_NODE, "*")
        return node

    walked = walk(document)
    for section in ("channels", "operations"):
        walked[section] = {_named(service, k): v for k, v in walked.get(section, {}).items()}
    components = walked.setdefault("components", {})
    components["messages"] = {
        _named(service, k): v for k, v in components.get("messages", {}).items()
    }
    if service == subjects.Service.RENDERER:
        for feed, models in RENDERER_FEEDS.items():
            message = components["messages"].get(f"renderer.{feed}:SubscribeMessage")
            if message is not None:
                refs = [{"$ref": f"#/components/schemas/{m.__name__}"} for m in models]
                message["payload"] = refs[0] if len(refs) == 1 else {"oneOf": refs}
    return walked


def document() -> dict[str, Any]:
    """The merged AsyncAPI 3.0 document of every service."""
    merged: dict[str, Any] = {
        "asyncapi": "3.0.0",
        "info": {
            "title": "tailwire bus",
            "version": subjects.ROOT.rsplit(".", 1)[-1],
            "description": "Every subject the tailwire services subscribe to and publish on, "
            "generated from the FastStream apps by `tailwire asyncapi`. Names are prefixed "
            "with the service. The overview, streams and encoding rules are in "
            "docs/subjects.md.",
        },
        "defaultContentType": "application/json",
        "servers": {
            "tailwire": {
                "host": _NATS_URL.removeprefix("nats://"),
                "protocol": "nats",
                "description": "The deployment's NATS with JetStream (deploy/base/nats.yaml)",
            }
        },
        "channels": {},
        "operations": {},
        "components": {"messages": {}, "schemas": {}},
    }
    for service, broker in service_brokers().items():
        _declare(broker, service)
        spec = AsyncAPI(broker, title="tailwire", version="v1", schema_version="3.0.0")
        part = _prefixed(json.loads(spec.to_specification().to_json()), str(service))
        merged["channels"].update(part["channels"])
        merged["operations"].update(part["operations"])
        merged["components"]["messages"].update(part["components"]["messages"])
        schemas = merged["components"]["schemas"]
        found = part["components"].get("schemas", {})
        found.pop("EmptyPayload", None)
        for name, schema in found.items():
            if name in schemas and schemas[name] != schema:
                raise RuntimeError(f"two different schemas are both named {name!r}")
            schemas[name] = schema
    for section in ("channels", "operations"):
        merged[section] = dict(sorted(merged[section].items()))
    for section in ("messages", "schemas"):
        merged["components"][section] = dict(sorted(merged["components"][section].items()))
    # Every service's server entry points at the one deployment server.
    for channel in merged["channels"].values():
        channel["servers"] = [{"$ref": "#/servers/tailwire"}]
    return merged


def render() -> str:
    header = "# Generated by `tailwire asyncapi -o docs/asyncapi.yaml`; do not edit.\n"
    return header + yaml.safe_dump(document(), sort_keys=False, width=100, allow_unicode=True)


def write(*, output: Path | None, check: bool, out: TextIO = sys.stdout) -> int:
    """Print or write the document; with `check`, exit 1 if the file differs."""
    text = render()
    if output is None:
        out.write(text)
        return 0
    if check:
        current = output.read_text() if output.exists() else ""
        if current != text:
            out.write(f"{output} is stale: run `tailwire asyncapi -o {output}`\n")
            return 1
        return 0
    output.write_text(text)
    return 0
