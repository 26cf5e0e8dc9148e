"""Who may publish and subscribe what on the bus: one table, one user per service.

The NATS server configuration of `deploy/` and of the end-to-end tests is generated from
this table (`tailwire nats-config`), so the permissions and the subjects cannot drift apart.
A nodeagent gets a user per node that may read only its node's plan and the gateway configs,
and publish only its node's acks. JetStream needs its API (`$JS.API.>`), acks (`$JS.ACK.>`)
and reply inboxes (`_INBOX.>`).
"""

from __future__ import annotations

import dataclasses

from tailwire.shared import subjects

_JS = ("$JS.API.>", "$JS.ACK.>", "$JS.FC.>")
_INBOX = ("_INBOX.>",)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Permissions:
    publish: tuple[str, ...]
    subscribe: tuple[str, ...]
    # May answer requests it received (the auth callout's replies go to server inboxes).
    allow_responses: bool = False


AUTH_CALLOUT_SUBJECT = "$SYS.REQ.USER.AUTH"


def for_callout(perms: Permissions) -> Permissions:
    """The keyminter's permissions when it answers nats-server's auth callout."""
    return dataclasses.replace(
        perms, subscribe=(*perms.subscribe, AUTH_CALLOUT_SUBJECT), allow_responses=True
    )


def _dead(service: subjects.Service) -> str:
    return subjects.deadletter(service)


def for_service(service: subjects.Service) -> Permissions:
    """The subjects one central service may publish to and subscribe to."""
    root = subjects.ROOT
    if service is subjects.Service.WATCHER:
        return Permissions(
            publish=(subjects.cluster_filter(), _dead(service), *_JS),
            subscribe=(subjects.cluster_filter(), *_INBOX),
        )
    if service is subjects.Service.KEYMINTER:
        return Permissions(
            publish=(
                f"{root}.keys.ready.>",
                f"{root}.keys.failed.>",
                f"{root}.keys.revoked.>",
                f"{root}.keys.tailnet.>",
                _dead(service),
                *_JS,
            ),
            subscribe=(subjects.keys_filter("request"), subjects.cluster_filter(), *_INBOX),
        )
    if service is subjects.Service.RENDERER:
        return Permissions(
            publish=(
                subjects.keys_filter("request"),
                subjects.node_plans_filter(),
                subjects.gateway_config_filter(),
                subjects.status_filter(),
                _dead(service),
                *_JS,
            ),
            subscribe=(
                subjects.cluster_filter(),
                subjects.keys_filter(),
                subjects.node_filter(),
                subjects.gateway_config_filter(),
                subjects.status_filter(),
                *_INBOX,
            ),
        )
    if service is subjects.Service.DNSUPDATER:
        return Permissions(
            publish=(subjects.dns_filter(), _dead(service), *_JS),
            subscribe=(subjects.cluster_filter(), *_INBOX),
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
    stream = "TAILWIRE_NODES"
    api = "$JS.API"
    plan, configs = plan_consumer(node), gateways_consumer(node)
    publish = [
        subjects.node_ack(node),
        _dead(subjects.Service.NODEAGENT),
        f"{api}.INFO",
        f"{api}.STREAM.INFO.{stream}",
        f"{api}.CONSUMER.CREATE.{stream}.{plan}.{subjects.node_plan(node)}",
        f"{api}.CONSUMER.CREATE.{stream}.{configs}.{subjects.gateway_config_filter()}",
    ]
    for name in (plan, configs):
        publish += [
            f"{api}.CONSUMER.INFO.{stream}.{name}",
            f"{api}.CONSUMER.DELETE.{stream}.{name}",
            f"{api}.CONSUMER.MSG.NEXT.{stream}.{name}",
            f"$JS.ACK.{stream}.{name}.>",
            f"$JS.FC.{stream}.{name}.>",
        ]
    return Permissions(publish=tuple(publish), subscribe=(f"{inbox_prefix(node)}.>",))


def for_any_node() -> Permissions:
    """One user shared by every nodeagent: works without listing nodes, but does NOT confine
    an agent to its node. The default of `deploy/base`; `--nodes` gives per-node users."""
    return Permissions(
        publish=(subjects.node_acks_filter(), _dead(subjects.Service.NODEAGENT), *_JS),
        subscribe=(subjects.node_plans_filter(), subjects.gateway_config_filter(), *_INBOX),
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
    auth_callout_issuer: str | None = None,
    tls: tuple[str, str] | None = None,
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
    """
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
    if cluster_routes:
        # A JetStream cluster: each server names itself from its pod name ($POD_NAME).
        cluster = (
            "server_name: $POD_NAME\n"
            'cluster {\n  name: "tailwire"\n  listen: "0.0.0.0:6222"\n'
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
