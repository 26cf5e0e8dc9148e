"""Every label, annotation and finalizer key tailwire reads or writes, in one place."""

from __future__ import annotations

import hashlib
import re

DOMAIN = "tailwire.dev"

# On everything tailwire creates; pruning only ever touches objects carrying it.
MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "tailwire"
PART_OF = "app.kubernetes.io/part-of"
COMPONENT = "app.kubernetes.io/component"

# Which resource an object belongs to (owner references cannot cross scopes/namespaces).
OWNER_KIND = f"{DOMAIN}/owner-kind"
OWNER_NAME = f"{DOMAIN}/owner-name"
OWNER_NAMESPACE = f"{DOMAIN}/owner-namespace"

# Gateway pods, DaemonSets, ConfigMaps and Secrets of an EgressGroup.
EGRESS_GROUP = f"{DOMAIN}/egress-group"
TAILNET = f"{DOMAIN}/tailnet"

# A named network namespace standing in for a pod's netns (tests, `tailwire dev`); in a
# cluster the nodeagent finds the netns by pod UID instead.
NETNS = f"{DOMAIN}/netns"

# HTTPRoute/hostname policy for the dnsupdater.
SPLIT_HORIZON = f"{DOMAIN}/split-horizon"  # "true": tailnet answer only, never ExternalDNS
PUBLIC = f"{DOMAIN}/public"  # "true": manage the ExternalDNS expose annotation

# The dnsupdater's record of which ExternalDNS annotation keys it wrote (comma-separated), so
# it only ever removes what it manages.
DNS_MANAGED_ANNOTATIONS = f"{DOMAIN}/dns-managed-annotations"

# Envoy Gateway labels the Service (and pods) of a Gateway with its owner.
ENVOY_OWNING_GATEWAY_NAME = "gateway.envoyproxy.io/owning-gateway-name"
ENVOY_OWNING_GATEWAY_NAMESPACE = "gateway.envoyproxy.io/owning-gateway-namespace"

# Tailscale operator conventions tailwire follows.
TAILSCALE_HOSTNAME = "tailscale.com/hostname"
TAILSCALE_LOAD_BALANCER_CLASS = "tailscale"

# Deletion waits for key revocation and node cleanup.
FINALIZER = f"{DOMAIN}/cleanup"

# Annotation prefixes the watcher keeps on snapshots; everything else is noise downstream.
KEPT_ANNOTATION_PREFIXES = (
    f"{DOMAIN}/",
    "tailscale.com/",
    "external-dns.alpha.kubernetes.io/",
    "external-dns.kubernetes.io/",
)


def managed(*, component: str) -> dict[str, str]:
    """The labels every object tailwire creates carries."""
    return {MANAGED_BY: MANAGED_BY_VALUE, PART_OF: "tailwire", COMPONENT: component}


_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
MAX_LABEL_VALUE = 63


def label_value(value: str) -> str:
    """`value` if Kubernetes accepts it as a label value, else a stable valid stand-in: its
    label-safe prefix plus a hash (at most 63 characters, alphanumeric at both ends). Object
    names may be 253 characters long; a label holding one must go through here."""
    if len(value) <= MAX_LABEL_VALUE and _LABEL_VALUE.match(value):
        return value
    digest = hashlib.sha256(value.encode()).hexdigest()[:8]
    safe = re.sub(r"[^A-Za-z0-9_.-]", "-", value)[: MAX_LABEL_VALUE - 9].strip("-_.")
    return f"{safe}-{digest}" if safe else digest
