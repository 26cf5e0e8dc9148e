"""Every NATS subject of tailwire is built and parsed here, and nowhere else.

The subjects are a public interface (integrations subscribe to them), documented in
`docs/subjects.md`. All start with `tailwire.v1.`. Name tokens (namespaces, object names,
node names, zones) may contain characters NATS treats specially (`.`, `*`, `>`, whitespace)
or characters outside ASCII, so each one is encoded reversibly by `encode_token`:
`[a-z0-9-]` pass through; every other byte of the UTF-8 form becomes `~XX` (upper-case hex).
`_` alone stands for "no namespace" (cluster-scoped objects); a real `_` encodes as `~5F`.

This module must not talk to NATS; it only makes and reads strings.
"""

from __future__ import annotations

import dataclasses
import enum
import re

from tailwire.shared import errors

ROOT = "tailwire.v1"
NO_NAMESPACE = "_"

_PLAIN = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")
_ESCAPE = re.compile(r"~([0-9A-F]{2})")
_TOKEN_OK = re.compile(r"^(?:[a-z0-9-]|~[0-9A-F]{2})+$")


class Kind(enum.StrEnum):
    """The kinds mirrored on `tailwire.v1.cluster.<kind>...` and `tailwire.v1.status.<kind>...`."""

    POD = "pod"
    NAMESPACE = "namespace"
    NODE = "node"
    SERVICE = "service"
    GATEWAY = "gateway"
    HTTPROUTE = "httproute"
    EGRESSGROUP = "egressgroup"
    TAILSCALEGATEWAY = "tailscalegateway"
    TAILSCALETAILNET = "tailscaletailnet"


class Service(enum.StrEnum):
    """The five services; used for dead-letter subjects, NATS users and durable names."""

    WATCHER = "watcher"
    KEYMINTER = "keyminter"
    RENDERER = "renderer"
    DNSUPDATER = "dnsupdater"
    NODEAGENT = "nodeagent"


def encode_token(value: str) -> str:
    """Encode one name so it is a single, safe NATS token; reversible by `decode_token`."""
    if not value:
        raise errors.SubjectError("a subject token cannot be empty")
    out: list[str] = []
    for char in value:
        if char in _PLAIN:
            out.append(char)
        else:
            out.extend(f"~{byte:02X}" for byte in char.encode("utf-8"))
    return "".join(out)


def decode_token(token: str) -> str:
    """Invert `encode_token`; raises SubjectError for anything it could not have produced."""
    if not _TOKEN_OK.match(token):
        raise errors.SubjectError(f"not an encoded subject token: {token!r}")
    raw = bytearray()
    pos = 0
    for match in _ESCAPE.finditer(token):
        raw.extend(token[pos : match.start()].encode("ascii"))
        raw.append(int(match.group(1), 16))
        pos = match.end()
    raw.extend(token[pos:].encode("ascii"))
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise errors.SubjectError(f"subject token is not UTF-8: {token!r}") from exc


def _ns_token(namespace: str | None) -> str:
    return NO_NAMESPACE if not namespace else encode_token(namespace)


def _ns_from_token(token: str) -> str | None:
    return None if token == NO_NAMESPACE else decode_token(token)


@dataclasses.dataclass(frozen=True, kw_only=True)
class ObjectRef:
    """A Kubernetes object as subjects name it: kind, namespace (None if cluster-scoped), name."""

    kind: Kind
    namespace: str | None
    name: str

    def __str__(self) -> str:
        return (
            f"{self.kind}/{self.namespace}/{self.name}"
            if self.namespace
            else (f"{self.kind}/{self.name}")
        )


# --- cluster snapshots and status (stream TAILWIRE_CLUSTER) -----------------------------------


def cluster(ref: ObjectRef) -> str:
    """`tailwire.v1.cluster.<kind>.<namespace or _>.<name>`: one object's latest snapshot."""
    return f"{ROOT}.cluster.{ref.kind}.{_ns_token(ref.namespace)}.{encode_token(ref.name)}"


def cluster_filter(kind: Kind | None = None) -> str:
    """Wildcard over all snapshots, or over one kind's."""
    return f"{ROOT}.cluster.>" if kind is None else f"{ROOT}.cluster.{kind}.>"


def status(ref: ObjectRef) -> str:
    """`tailwire.v1.status.<kind>.<namespace or _>.<name>`: status summary for integrations."""
    return f"{ROOT}.status.{ref.kind}.{_ns_token(ref.namespace)}.{encode_token(ref.name)}"


def status_filter(kind: Kind | None = None) -> str:
    return f"{ROOT}.status.>" if kind is None else f"{ROOT}.status.{kind}.>"


# --- key work (stream TAILWIRE_WORK) ----------------------------------------------------------


def _owner_tokens(owner: ObjectRef) -> str:
    return f"{owner.kind}.{_ns_token(owner.namespace)}.{encode_token(owner.name)}"


def keys_request(owner: ObjectRef) -> str:
    """`tailwire.v1.keys.request.<owner>`; the owner is three tokens: kind, namespace, name."""
    return f"{ROOT}.keys.request.{_owner_tokens(owner)}"


def keys_ready(owner: ObjectRef) -> str:
    return f"{ROOT}.keys.ready.{_owner_tokens(owner)}"


def keys_revoked(owner: ObjectRef) -> str:
    return f"{ROOT}.keys.revoked.{_owner_tokens(owner)}"


def keys_failed(owner: ObjectRef) -> str:
    """`tailwire.v1.keys.failed.<owner>`: minting failed in a way retrying will not fix."""
    return f"{ROOT}.keys.failed.{_owner_tokens(owner)}"


def keys_tailnet(tailnet: str) -> str:
    """`tailwire.v1.keys.tailnet.tailscaletailnet._.<name>`: the keyminter's last check of a
    TailscaleTailnet's control API (the owner tokens name the TailscaleTailnet)."""
    ref = ObjectRef(kind=Kind.TAILSCALETAILNET, namespace=None, name=tailnet)
    return f"{ROOT}.keys.tailnet.{_owner_tokens(ref)}"


KEY_EVENTS = ("request", "ready", "failed", "revoked", "tailnet")


def keys_filter(event: str | None = None) -> str:
    """All key work, or one of KEY_EVENTS."""
    if event is None:
        return f"{ROOT}.keys.>"
    if event not in KEY_EVENTS:
        raise errors.SubjectError(f"unknown key event {event!r}")
    return f"{ROOT}.keys.{event}.>"


# --- nodes and gateways (stream TAILWIRE_NODES) -----------------------------------------------


def node_plan(node: str) -> str:
    """`tailwire.v1.node.<node>.plan`: the node's full desired state (compacted)."""
    return f"{ROOT}.node.{encode_token(node)}.plan"


def node_ack(node: str) -> str:
    """`tailwire.v1.node.<node>.ack`: what the node's agent applied."""
    return f"{ROOT}.node.{encode_token(node)}.ack"


def node_filter(node: str | None = None) -> str:
    return f"{ROOT}.node.>" if node is None else f"{ROOT}.node.{encode_token(node)}.>"


def node_plans_filter() -> str:
    return f"{ROOT}.node.*.plan"


def node_acks_filter() -> str:
    return f"{ROOT}.node.*.ack"


def gateway_config(group: str) -> str:
    """`tailwire.v1.gateway.<group>.config`: rendered tailscaled config (no secrets) + hash."""
    return f"{ROOT}.gateway.{encode_token(group)}.config"


def gateway_config_filter() -> str:
    return f"{ROOT}.gateway.*.config"


# --- DNS and dead letters (stream TAILWIRE_WORK) ----------------------------------------------


def dns_changed(zone: str) -> str:
    """`tailwire.v1.dns.<zone>.changed`; the zone's dots are encoded (`example~2Ecom`)."""
    return f"{ROOT}.dns.{encode_token(zone.rstrip('.'))}.changed"


def dns_filter() -> str:
    return f"{ROOT}.dns.*.changed"


def deadletter(service: Service | str) -> str:
    """`tailwire.v1.deadletter.<service>`: a rejected message and the reason."""
    return f"{ROOT}.deadletter.{encode_token(str(service))}"


def deadletter_filter() -> str:
    return f"{ROOT}.deadletter.>"


# --- streams: which subjects each JetStream stream captures ------------------------------------

CLUSTER_STREAM_SUBJECTS = (cluster_filter(), status_filter())
NODES_STREAM_SUBJECTS = (node_filter(), f"{ROOT}.gateway.>")
WORK_STREAM_SUBJECTS = (keys_filter(), f"{ROOT}.dns.>", deadletter_filter())


# --- parsing ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, kw_only=True)
class Parsed:
    """What a subject says: its area, the event within it, and whom it is about."""

    area: str
    event: str | None = None
    ref: ObjectRef | None = None
    node: str | None = None
    group: str | None = None
    zone: str | None = None
    service: str | None = None


def parse(subject: str) -> Parsed:
    """Read any tailwire subject back into its parts; SubjectError if it is not one of ours."""
    prefix = ROOT + "."
    if not subject.startswith(prefix):
        raise errors.SubjectError(f"not a tailwire.v1 subject: {subject!r}")
    tokens = subject[len(prefix) :].split(".")
    area, rest = tokens[0], tokens[1:]
    try:
        if area in ("cluster", "status") and len(rest) == 3:
            return Parsed(area=area, ref=_ref(rest))
        if area == "keys" and len(rest) == 4 and rest[0] in KEY_EVENTS:
            return Parsed(area=area, event=rest[0], ref=_ref(rest[1:]))
        if area == "node" and len(rest) == 2 and rest[1] in ("plan", "ack"):
            return Parsed(area=area, event=rest[1], node=decode_token(rest[0]))
        if area == "gateway" and len(rest) == 2 and rest[1] == "config":
            return Parsed(area=area, event="config", group=decode_token(rest[0]))
        if area == "dns" and len(rest) == 2 and rest[1] == "changed":
            return Parsed(area=area, event="changed", zone=decode_token(rest[0]))
        if area == "deadletter" and len(rest) == 1:
            return Parsed(area=area, service=decode_token(rest[0]))
    except ValueError as exc:  # unknown Kind, bad token
        raise errors.SubjectError(f"malformed subject {subject!r}: {exc}") from exc
    raise errors.SubjectError(f"unknown subject shape: {subject!r}")


def _ref(tokens: list[str]) -> ObjectRef:
    kind, ns, name = tokens
    return ObjectRef(kind=Kind(kind), namespace=_ns_from_token(ns), name=decode_token(name))
