"""Who may publish and subscribe what on the bus: one table, one user per service.

The NATS server configuration of `deploy/` and of the end-to-end tests is generated from
this table (`tailwire nats-config`), so the permissions and the subjects cannot drift apart.
A nodeagent gets a user per node that may read only its node's plan and the gateway configs,
and publish only its node's acks.

JetStream is scoped per service too: each user may send exactly the JetStream API requests
its own consumers and start-up make (`$JS.API.<request>.<stream>[.<consumer>[.<filter>]]`),
ack and answer flow control only on its own consumers' streams, and read replies only on its
own inbox prefix. The streams have one owner, the renderer (`bus.STREAM_OWNER`): it alone may
create and update them; the others may only read their info and wait for them. Nobody may
delete or purge a stream, or list, read or delete another service's consumers. The subjects
were read off a permissive nats-server's trace (`-DV`) while every service ran; the table in
docs/subjects.md ("JetStream permissions") lists them with the reason for each.

Wildcards stand only where the name is generated: FastStream's push subscribers (ordered or
not) create their consumers with the request `CONSUMER.CREATE.<stream>`, whose consumer name
the server makes up and whose filter travels in the body, so their acks and flow-control
replies (`$JS.ACK.<stream>.<name>.>`, `$JS.FC.<stream>.<name>.>`) need `*` for the name.
"""

from __future__ import annotations

import dataclasses

from tailwire.shared import bus, subjects

API = "$JS.API"


@dataclasses.dataclass(frozen=True, kw_only=True)
class Permissions:
    publish: tuple[str, ...]
    subscribe: tuple[str, ...]
    # May answer requests it received (the auth callout's replies go to server inboxes).
    allow_responses: bool = False


AUTH_CALLOUT_SUBJECT = "$SYS.REQ.USER.AUTH"

# The keyminter's durable pull consumer of the key requests (on TAILWIRE_WORK).
KEYMINTER_REQUESTS_CONSUMER = "tailwire-keyminter-requests"
# The watcher's consumer that reads back the last snapshot of each subject of one kind on
# start, one kind after another (deleted before and after each read).
WATCHER_RECALL_CONSUMER = "tailwire-watcher-recall"


def for_callout(perms: Permissions) -> Permissions:
    """The keyminter's permissions when it answers nats-server's auth callout."""
    return dataclasses.replace(
        perms, subscribe=(*perms.subscribe, AUTH_CALLOUT_SUBJECT), allow_responses=True
    )


def _dead(service: subjects.Service) -> str:
    return subjects.deadletter(service)


def _stream_info(service: subjects.Service) -> tuple[str, ...]:
    """Read the info of the streams this service needs (it waits for them on start)."""
    return tuple(f"{API}.STREAM.INFO.{name}" for name in bus.STREAMS_USED[service])


def _push_consumers(stream: str, *, flow_control: bool) -> tuple[str, ...]:
    """FastStream push subscribers on `stream`: created without a name (the server makes one
    up), so their acks, and for ordered consumers the flow-control replies, are allowed for
    any consumer name of that stream."""
    granted = (f"{API}.CONSUMER.CREATE.{stream}", f"$JS.ACK.{stream}.*.>")
    return (*granted, f"$JS.FC.{stream}.*.>") if flow_control else granted


def _watcher_js() -> tuple[str, ...]:
    stream, name = bus.CLUSTER_STREAM, WATCHER_RECALL_CONSUMER
    return (
        *_stream_info(subjects.Service.WATCHER),
        *(
            f"{API}.CONSUMER.CREATE.{stream}.{name}.{subjects.cluster_filter(kind)}"
            for kind in subjects.Kind
        ),
        f"{API}.CONSUMER.INFO.{stream}.{name}",
        f"{API}.CONSUMER.MSG.NEXT.{stream}.{name}",
        f"{API}.CONSUMER.DELETE.{stream}.{name}",
    )


def _keyminter_js() -> tuple[str, ...]:
    stream, name = bus.WORK_STREAM, KEYMINTER_REQUESTS_CONSUMER
    return (
        *_stream_info(subjects.Service.KEYMINTER),
        f"{API}.CONSUMER.CREATE.{stream}.{name}.{subjects.keys_filter('request')}",
        f"{API}.CONSUMER.INFO.{stream}.{name}",
        f"{API}.CONSUMER.MSG.NEXT.{stream}.{name}",
        f"$JS.ACK.{stream}.{name}.>",
        # The TailscaleTailnet snapshots: an ordered consumer.
        *_push_consumers(bus.CLUSTER_STREAM, flow_control=True),
    )


def _renderer_js() -> tuple[str, ...]:
    granted: list[str] = []
    for spec in bus.STREAMS:
        # The owner of the streams: declares them on start (create, else update).
        granted += [
            f"{API}.STREAM.CREATE.{spec.name}",
            f"{API}.STREAM.UPDATE.{spec.name}",
            f"{API}.STREAM.INFO.{spec.name}",
        ]
        # Ordered consumers of every feed it reads back on start and follows.
        granted += _push_consumers(spec.name, flow_control=True)
    return tuple(granted)


def _dnsupdater_js() -> tuple[str, ...]:
    return (
        *_stream_info(subjects.Service.DNSUPDATER),
        *_push_consumers(bus.CLUSTER_STREAM, flow_control=False),
    )


def for_service(service: subjects.Service) -> Permissions:
    """The subjects one central service may publish to and subscribe to."""
    root = subjects.ROOT
    inbox = (f"{bus.service_inbox_prefix(service)}.>",)
    if service is subjects.Service.WATCHER:
        return Permissions(
            publish=(subjects.cluster_filter(), _dead(service), *_watcher_js()),
            subscribe=(subjects.cluster_filter(), *inbox),
        )
    if service is subjects.Service.KEYMINTER:
        return Permissions(
            publish=(
                f"{root}.keys.ready.>",
                f"{root}.keys.failed.>",
                f"{root}.keys.revoked.>",
                f"{root}.keys.tailnet.>",
                _dead(service),
                *_keyminter_js(),
            ),
            subscribe=(subjects.keys_filter("request"), subjects.cluster_filter(), *inbox),
        )
    if service is subjects.Service.RENDERER:
        return Permissions(
            publish=(
                subjects.keys_filter("request"),
                subjects.node_plans_filter(),
                subjects.gateway_config_filter(),
                subjects.status_filter(),
                _dead(service),
                *_renderer_js(),
            ),
            subscribe=(
                subjects.cluster_filter(),
                subjects.keys_filter(),
                subjects.node_filter(),
                subjects.gateway_config_filter(),
                subjects.status_filter(),
                *inbox,
            ),
        )
    if service is subjects.Service.DNSUPDATER:
        return Permissions(
            publish=(subjects.dns_filter(), _dead(service), *_dnsupdater_js()),
            subscribe=(subjects.cluster_filter(), *inbox),
        )
    raise ValueError(f"{service} has per-node permissions: use for_node()")


def inbox_prefix(node: str) -> str:
    """A nodeagent's private reply prefix: no other agent may subscribe to its replies."""
    return f"_INBOX_{subjects.encode_token(node)}"


def plan_consumer(node: str) -> str:
    """The JetStream consumer name a nodeagent reads its plan through."""
    return f"nodeagent-{subjects.encode_token(node)}-plan"


def gateways_consumer(node: str) -> str:
    """The JetStream consumer name a nodeagent reads gateway configs through."""
    return f"nodeagent-{subjects.encode_token(node)}-gateways"


def for_node(node: str) -> Permissions:
    """A nodeagent: its own plan and the gateway configs in; its own acks out.

    JetStream access is scoped too: it may create exactly two consumers on TAILWIRE_NODES,
    with fixed names, one filtered to its own plan and one to the gateway configs (the
    filter is part of the API subject since nats-server 2.9), and read only through them.
    NATS wildcards match whole tokens only, hence fixed names rather than a name prefix.
    """
    stream = bus.NODES_STREAM
    plan, configs = plan_consumer(node), gateways_consumer(node)
    publish = [
        subjects.node_ack(node),
        _dead(subjects.Service.NODEAGENT),
        f"{API}.INFO",
        f"{API}.CONSUMER.CREATE.{stream}.{plan}.{subjects.node_plan(node)}",
        f"{API}.CONSUMER.CREATE.{stream}.{configs}.{subjects.gateway_config_filter()}",
    ]
    for name in (plan, configs):
        publish += [
            f"{API}.CONSUMER.INFO.{stream}.{name}",
            f"{API}.CONSUMER.DELETE.{stream}.{name}",
            f"{API}.CONSUMER.MSG.NEXT.{stream}.{name}",
            f"$JS.ACK.{stream}.{name}.>",
            f"$JS.FC.{stream}.{name}.>",
        ]
    return Permissions(publish=tuple(publish), subscribe=(f"{inbox_prefix(node)}.>",))


def for_any_node() -> Permissions:
    """One user shared by every nodeagent: works without listing nodes, but does NOT confine
    an agent to its node. The default of `deploy/base`; `--nodes` gives per-node users.

    Its JetStream access has the shape of `for_node` with `*` for the node (the consumer
    names are made from it): no stream may be created, changed, purged or deleted."""
    stream = bus.NODES_STREAM
    publish = [
        subjects.node_acks_filter(),
        _dead(subjects.Service.NODEAGENT),
        f"{API}.INFO",
        f"{API}.CONSUMER.CREATE.{stream}.*.{subjects.node_plans_filter()}",
        f"{API}.CONSUMER.CREATE.{stream}.*.{subjects.gateway_config_filter()}",
        f"{API}.CONSUMER.INFO.{stream}.*",
        f"{API}.CONSUMER.DELETE.{stream}.*",
        f"{API}.CONSUMER.MSG.NEXT.{stream}.*",
        f"$JS.ACK.{stream}.*.>",
        f"$JS.FC.{stream}.*.>",
    ]
    return Permissions(
        publish=tuple(publish),
        subscribe=(subjects.node_plans_filter(), subjects.gateway_config_filter(), "_INBOX.>"),
    )


def nodeagent_user(node: str) -> str:
    return f"nodeagent-{subjects.encode_token(node)}"


def render_nats_config(
    *,
    passwords: dict[str, str],
    nodes: tuple[str, ...] = (),
    listen: str = "0.0.0.0:4222",
    store_dir: str = "/data/jetstream",
    password_from_env: bool = False,
    cluster_routes: tuple[str, ...] = (),
    cluster_listen: str = "0.0.0.0:6222",
    server_name: str = "$POD_NAME",
    auth_callout_issuer: str | None = None,
    tls: tuple[str, str] | None = None,
    tls_ca: str | None = None,
) -> str:
    """A nats-server configuration with JetStream and one user per service (and node).

    With `nodes`, each node's agent gets its own confined user; without, one shared
    `nodeagent` user serves every node (see `for_any_node`).

    `passwords` maps user name to password; with `password_from_env` each password is written
    as `$TAILWIRE_NATS_PASSWORD_<USER>` for nats-server to read from its environment, so no
    password lands in a ConfigMap.

    With `auth_callout_issuer` (an account public key, `A...`, or `$VAR` for nats-server
    to read from its environment), nodeagents have no static user: every other connection
    goes to the keyminter's auth callout, which gives a nodeagent its node's permissions
    from its ServiceAccount token (`services/keyminter/buscredentials.py`).

    With `tls` (certificate file, key file, PEM), clients must connect with TLS
    (`tls://`, TAILWIRE_NATS_TLS_CA_FILE); passwords and nodeagent tokens then never cross
    the network in the clear.

    With `cluster_routes` (HA), the servers' routes are authenticated by mutual TLS: each
    server presents its certificate (`tls`) and accepts a route only from a peer whose
    certificate the bus CA (`tls_ca`) signed, so nobody else can join the cluster and read
    or inject the streams. Routes therefore need `tls` and `tls_ca` (ValueError otherwise).
    `server_name` names this server in the JetStream cluster (`$POD_NAME` from the pod).
    """
    if cluster_routes and (tls is None or tls_ca is None):
        raise ValueError(
            "cluster routes need tls and tls_ca: routes are authenticated by the bus CA "
            "(mutual TLS), never left open"
        )
    users: list[tuple[str, Permissions]] = [
        (str(service), for_service(service))
        for service in subjects.Service
        if service is not subjects.Service.NODEAGENT
    ]
    if auth_callout_issuer is not None:
        users = [
            (user, for_callout(perms) if user == subjects.Service.KEYMINTER else perms)
            for user, perms in users
        ]
    users += [(nodeagent_user(node), for_node(node)) for node in nodes]
    if not nodes and auth_callout_issuer is None:
        users.append((str(subjects.Service.NODEAGENT), for_any_node()))
    blocks = []
    for user, perms in users:
        if password_from_env:
            secret = "$TAILWIRE_NATS_PASSWORD_" + user.upper().replace("-", "_").replace("~", "_")
        else:
            secret = _quote(passwords[user])
        responses = "        allow_responses: true\n" if perms.allow_responses else ""
        blocks.append(
            f"    {{ user: {_quote(user)}, password: {secret}, permissions: {{\n"
            f"        publish: {{ allow: [{_list(perms.publish)}] }}\n"
            f"        subscribe: {{ allow: [{_list(perms.subscribe)}] }}\n"
            f"{responses}"
            f"    }} }}"
        )
    callout = ""
    if auth_callout_issuer is not None:
        names = tuple(user for user, _ in users)
        callout = (
            f"  auth_callout {{\n    issuer: {_value(auth_callout_issuer)}\n"
            f"    auth_users: [{_list(names)}]\n  }}\n"
        )
    tls_block = ""
    if tls is not None:
        cert_file, key_file = tls
        tls_block = f"tls {{ cert_file: {_quote(cert_file)}, key_file: {_quote(key_file)} }}\n"
    cluster = ""
    if cluster_routes and tls is not None and tls_ca is not None:
        # A JetStream cluster: each server names itself (from its pod name); a route is
        # accepted only with a certificate of the bus CA (`verify`), and the route's server
        # is verified against it too.
        cert_file, key_file = tls
        cluster = (
            f"server_name: {_value(server_name)}\n"
            f'cluster {{\n  name: "tailwire"\n  listen: {_quote(cluster_listen)}\n'
            f"  tls {{ cert_file: {_quote(cert_file)}, key_file: {_quote(key_file)}, "
            f"ca_file: {_quote(tls_ca)}, verify: true }}\n"
            f"  routes: [{_list(cluster_routes)}]\n}}\n"
        )
    return (
        "# Generated by `tailwire nats-config` from tailwire.shared.permissions; do not edit.\n"
        f"listen: {_quote(listen)}\n"
        f"{tls_block}"
        f"jetstream {{ store_dir: {_quote(store_dir)} }}\n"
        f"{cluster}"
        "authorization {\n  users: [\n" + ",\n".join(blocks) + "\n  ]\n" + callout + "}\n"
    )


def _value(value: str) -> str:
    """`$NAME` stays a reference nats-server resolves from its environment; else quoted."""
    return value if value.startswith("$") else _quote(value)


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _list(items: tuple[str, ...]) -> str:
    return ", ".join(_quote(i) for i in items)
