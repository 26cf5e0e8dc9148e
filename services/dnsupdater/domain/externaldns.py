"""The ExternalDNS annotations tailwire manages on HTTPRoutes and Gateways.

- A route attached to a tailnet Gateway and marked public (`tailwire.dev/public: "true"`)
  gets `<prefix>expose: "true"`; its Gateway gets `<prefix>target: <Tailscale hostname>`.
- A split-horizon route (`tailwire.dev/split-horizon: "true"`, or one of its hostnames in
  the settings' list) never gets them, and existing `expose`/`hostname`/`target`
  annotations under the configured and both known prefixes are removed, so ExternalDNS
  (any version) leaves the public record alone.
- Anything else is removed only if tailwire wrote it: the keys it wrote are listed in the
  `tailwire.dev/dns-managed-annotations` marker on the object.

The current annotations come from the snapshots (the watcher keeps these prefixes), so a
patch is produced only when something differs. Pure: must not call the Kubernetes API.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Literal

from tailwire.services.dnsupdater.domain import exposures
from tailwire.shared.events import cluster
from tailwire.shared.k8s import labels

DEFAULT_PREFIX = "external-dns.alpha.kubernetes.io/"
NEW_PREFIX = "external-dns.kubernetes.io/"  # ExternalDNS 0.22+
EXPOSE = "expose"
TARGET = "target"
HOSTNAME = "hostname"
# What a split-horizon route must not carry: any of these makes ExternalDNS publish it.
_SPLIT_FORBIDDEN = (EXPOSE, HOSTNAME, TARGET)


@dataclasses.dataclass(frozen=True, kw_only=True)
class AnnotationPatch:
    """A merge patch of `metadata.annotations` for one object (`None` removes a key)."""

    kind: Literal["HTTPRoute", "Gateway"]
    namespace: str
    name: str
    changes: tuple[tuple[str, str | None], ...]

    def as_merge_patch(self) -> dict[str, object]:
        return {"metadata": {"annotations": dict(self.changes)}}


def _flag(meta: cluster.Meta, key: str) -> bool:
    value = meta.annotations.get(key, meta.labels.get(key, ""))
    return value.strip().lower() == "true"


def _marked(meta: cluster.Meta) -> set[str]:
    raw = meta.annotations.get(labels.DNS_MANAGED_ANNOTATIONS, "")
    return {key.strip() for key in raw.split(",") if key.strip()}


def is_split_horizon(route: cluster.HTTPRouteSnapshot, *, split_hostnames: frozenset[str]) -> bool:
    if _flag(route.meta, labels.SPLIT_HORIZON):
        return True
    return any(exposures.normalize_hostname(h) in split_hostnames for h in route.hostnames)


def _patch(
    *,
    kind: Literal["HTTPRoute", "Gateway"],
    meta: cluster.Meta,
    desired: Mapping[str, str],
    also_remove: Iterable[str] = (),
) -> AnnotationPatch | None:
    current = meta.annotations
    changes: dict[str, str | None] = {k: v for k, v in desired.items() if current.get(k) != v}
    for key in (_marked(meta) | set(also_remove)) - desired.keys():
        if key in current:
            changes[key] = None
    marker = ",".join(sorted(desired)) or None
    if current.get(labels.DNS_MANAGED_ANNOTATIONS) != marker:
        changes[labels.DNS_MANAGED_ANNOTATIONS] = marker
    if not changes:
        return None
    return AnnotationPatch(
        kind=kind,
        namespace=meta.namespace or "default",
        name=meta.name,
        changes=tuple(sorted(changes.items())),
    )


def route_patch(
    route: cluster.HTTPRouteSnapshot,
    *,
    exposed: Mapping[exposures.GatewayRef, exposures.Exposure],
    prefix: str,
    split_hostnames: frozenset[str],
) -> AnnotationPatch | None:
    """The patch that brings one route's managed annotations to the desired state, if any."""
    attached = bool(exposures.accepted_gateways(route) & exposed.keys())
    split = is_split_horizon(route, split_hostnames=split_hostnames)
    public = _flag(route.meta, labels.PUBLIC)
    desired = {prefix + EXPOSE: "true"} if attached and public and not split else {}
    # Whichever ExternalDNS version reads the route, it must not publish a split-horizon name.
    prefixes = {prefix, DEFAULT_PREFIX, NEW_PREFIX}
    forbidden = [p + key for p in sorted(prefixes) for key in _SPLIT_FORBIDDEN] if split else []
    return _patch(kind="HTTPRoute", meta=route.meta, desired=desired, also_remove=forbidden)


def gateway_patch(
    gateway: cluster.GatewaySnapshot,
    *,
    exposed: Mapping[exposures.GatewayRef, exposures.Exposure],
    prefix: str,
) -> AnnotationPatch | None:
    """The target annotation of a tailnet Gateway (its MagicDNS name), or its removal."""
    ref = exposures.GatewayRef(
        namespace=gateway.meta.namespace or "default", name=gateway.meta.name
    )
    exposure = exposed.get(ref)
    desired = {prefix + TARGET: exposure.hostname} if exposure and exposure.hostname else {}
    return _patch(kind="Gateway", meta=gateway.meta, desired=desired)


def annotation_patches(
    *,
    routes: Iterable[cluster.HTTPRouteSnapshot],
    gateways: Iterable[cluster.GatewaySnapshot],
    exposed: Mapping[exposures.GatewayRef, exposures.Exposure],
    prefix: str = DEFAULT_PREFIX,
    split_hostnames: Iterable[str] = (),
) -> list[AnnotationPatch]:
    """Every patch needed across the live routes and gateways, in a stable order."""
    split = frozenset(exposures.normalize_hostname(h) for h in split_hostnames)
    patches: list[AnnotationPatch] = []
    for gateway in gateways:
        if not gateway.deleted and (
            patch := gateway_patch(gateway, exposed=exposed, prefix=prefix)
        ):
            patches.append(patch)
    for route in routes:
        if route.deleted:
            continue
        patch = route_patch(route, exposed=exposed, prefix=prefix, split_hostnames=split)
        if patch:
            patches.append(patch)
    return sorted(patches, key=lambda p: (p.kind, p.namespace, p.name))
