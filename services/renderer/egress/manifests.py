"""The Kubernetes objects of a group's gateway, as server-side apply documents.

Per active group: a ConfigMap holding the tailscaled config of every gateway node (one key
per node, since only the Hostname differs), and a DaemonSet of gateway pods in their own netns
with state on a hostPath keyed by group and tailnet. Only the pod's first init container is
privileged: it sets the netns's forwarding and rp_filter (`names.GATEWAY_SYSCTLS`), which the
non-privileged nodeagent cannot write and only checks; tailscaled itself gets NET_ADMIN. The
pod template depends only on the group's name, tailnet, image and `spec.gateway` (placement
and overrides): membership and config changes never roll the gateways. Without a
nodeSelector, gateways run where the group has members, which the renderer says with a
per-group label on those Nodes (a Node apply document, field manager `tailwire`), not in
the template.
Must not: do I/O, or produce anything without the managed-by label pruning keys on.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from tailwire.services.renderer.egress import configs, groups, options
from tailwire.shared.k8s import labels, names
from tailwire.shared.resources import egressgroup

COMPONENT = "egress-gateway"
NODE_LABEL_PREFIX = "egress.tailwire.dev/"
CONFIG_MOUNT = "/etc/tailwire/config"
SYSCTL_CONTAINER = "sysctls"

Manifest = dict[str, Any]


def node_label(group: str) -> str:
    """The Node label that schedules a group's gateways (name part at most 63 characters)."""
    if len(group) <= 63:
        return NODE_LABEL_PREFIX + group
    digest = hashlib.sha256(group.encode()).hexdigest()[:8]
    return f"{NODE_LABEL_PREFIX}{group[:54].rstrip('-.')}-{digest}"


def object_labels(group: groups.Group) -> dict[str, str]:
    return {
        **labels.managed(component=COMPONENT),
        labels.OWNER_KIND: egressgroup.KIND,
        labels.OWNER_NAME: labels.label_value(group.name),
        labels.EGRESS_GROUP: labels.label_value(group.name),
        labels.TAILNET: labels.label_value(group.tailnet),
    }


def owner_references(group: groups.Group) -> list[dict[str, Any]]:
    if not group.uid or "/" in group.uid:  # offline render without a uid: nothing to point at
        return []
    return [
        {
            "apiVersion": egressgroup.API_VERSION,
            "kind": egressgroup.KIND,
            "name": group.name,
            "uid": group.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]


def _metadata(group: groups.Group, *, namespace: str) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "name": names.gateway_workload(group.name),
        "namespace": namespace,
        "labels": object_labels(group),
    }
    owners = owner_references(group)
    if owners:
        metadata["ownerReferences"] = owners
    return metadata


def config_map(
    group: groups.Group, *, gateway_nodes: Iterable[str], opts: options.Options
) -> Manifest:
    data = {
        f"{node}.json": json.dumps(
            configs.tailscaled_config(group, hostname=configs.hostname_for(group, node=node)),
            indent=2,
        )
        + "\n"
        for node in sorted(gateway_nodes)
    }
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(group, namespace=opts.gateway_namespace),
        "data": data,
    }


# Until the nodeagent has written this node's config into the state dir, seed it from the
# ConfigMap (kubelet may lag behind; the nodeagent's copy then wins and is hot-reloaded).
_CONFIG = names.GATEWAY_CONFIG_FILE
_SEED_SCRIPT = (
    f'until [ -s "$STATE/{_CONFIG}" ]; do '
    f'if [ -s "{CONFIG_MOUNT}/$NODE_NAME.json" ]; '
    f'then cp "{CONFIG_MOUNT}/$NODE_NAME.json" "$STATE/{_CONFIG}"; '
    "else sleep 2; fi; done"
)


def daemon_set(group: groups.Group, *, opts: options.Options) -> Manifest:
    assert group.spec is not None
    state_dir = names.gateway_state_dir(group=group.name, tailnet=group.tailnet)
    selector = {labels.EGRESS_GROUP: labels.label_value(group.name)}
    node_selector = dict(sorted(group.spec.gateway.node_selector.items())) or {
        node_label(group.name): "true"
    }
    state_mount = {"name": "state", "mountPath": state_dir}
    gateway = group.spec.gateway
    image = gateway.image or opts.gateway_image
    tolerations = (
        [t.dump() for t in gateway.tolerations]
        if gateway.tolerations is not None
        else [{"operator": "Exists"}]  # by default on every node, whatever its taints
    )
    template: dict[str, Any] = {
        "metadata": {
            "labels": {
                **dict(sorted(gateway.labels.items())),
                **labels.managed(component=COMPONENT),
                **selector,
            },
        },
        "spec": {
            "nodeSelector": node_selector,
            "tolerations": tolerations,
            "terminationGracePeriodSeconds": 30,
            "initContainers": [
                {
                    # As the Tailscale operator's "sysctler": /proc/sys is writable only in a
                    # privileged container, and these are the pod netns's own settings.
                    "name": SYSCTL_CONTAINER,
                    "image": image,
                    "command": [
                        "sysctl",
                        "-w",
                        *(f"{key}={value}" for key, value in names.GATEWAY_SYSCTLS.items()),
                    ],
                    "securityContext": {"privileged": True},
                },
                {
                    "name": "seed-config",
                    "image": image,
                    "command": ["sh", "-c", _SEED_SCRIPT],
                    "env": [
                        {"name": "STATE", "value": state_dir},
                        {
                            "name": "NODE_NAME",
                            "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}},
                        },
                    ],
                    "volumeMounts": [
                        dict(state_mount),
                        {"name": "config", "mountPath": CONFIG_MOUNT, "readOnly": True},
                    ],
                },
            ],
            "containers": [
                {
                    "name": "tailscaled",
                    "image": image,
                    "command": ["tailscaled"],
                    "args": [
                        "--tun=tailscale0",
                        f"--config={state_dir}/{names.GATEWAY_CONFIG_FILE}",
                        f"--statedir={state_dir}",
                        f"--socket={state_dir}/{names.GATEWAY_SOCKET_FILE}",
                    ],
                    # Its routes and the TUN: NET_ADMIN, as the Tailscale operator's proxies;
                    # MKNOD for /dev/net/tun where the runtime neither creates it nor grants
                    # MKNOD by default (CRI-O).
                    "securityContext": {"capabilities": {"add": ["NET_ADMIN", "MKNOD"]}},
                    "volumeMounts": [
                        dict(state_mount),
                        {"name": "authkey", "mountPath": names.AUTHKEY_MOUNT, "readOnly": True},
                    ],
                }
            ],
            "volumes": [
                {"name": "state", "hostPath": {"path": state_dir, "type": "DirectoryOrCreate"}},
                {"name": "authkey", "secret": {"secretName": names.authkey_secret(group.name)}},
                {"name": "config", "configMap": {"name": names.gateway_workload(group.name)}},
            ],
        },
    }
    if gateway.annotations:
        template["metadata"]["annotations"] = dict(sorted(gateway.annotations.items()))
    if gateway.priority_class_name:
        template["spec"]["priorityClassName"] = gateway.priority_class_name
    if gateway.resources is not None:
        template["spec"]["containers"][0]["resources"] = {
            k: v for k, v in gateway.resources.dump().items() if v
        }
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": _metadata(group, namespace=opts.gateway_namespace),
        "spec": {
            "selector": {"matchLabels": selector},
            "updateStrategy": {"type": "RollingUpdate"},
            "template": template,
        },
    }


def node_labels(
    *, gateway_nodes: Mapping[str, Iterable[str]], current: Mapping[str, Mapping[str, str]]
) -> list[Manifest]:
    """Node apply documents carrying exactly the group labels each node should have.

    `gateway_nodes`: group -> nodes scheduled by label; `current`: every known node -> its
    labels now (a node that still carries one of our labels but should not gets an empty
    document, which removes what the `tailwire` field manager set).
    """
    wanted: dict[str, dict[str, str]] = {}
    for group, nodes_ in gateway_nodes.items():
        for node in nodes_:
            wanted.setdefault(node, {})[node_label(group)] = "true"
    for node, node_labels_ in current.items():
        if any(key.startswith(NODE_LABEL_PREFIX) for key in node_labels_):
            wanted.setdefault(node, {})
    # Only nodes that exist: applying to a missing Node would create one.
    return [
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": node, "labels": dict(sorted(wanted[node].items()))},
        }
        for node in sorted(wanted)
        if node in current
    ]
