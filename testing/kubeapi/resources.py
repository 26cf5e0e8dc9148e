"""The catalogue of resources the emulated API server serves.

Responsible for: what a resource *is* to the server (group, version, plural,
kind, scope, whether it has a ``/status`` subresource, which field selectors it
accepts, what DELETE returns) and for finding one by the names tests and URLs
use. Installing and uninstalling resources at runtime (a CRD appearing or
disappearing) is a change to this catalogue.

Must not: hold objects, speak HTTP, or know about watches. The defaults list
only what tailwire touches; a resource the real cluster would serve but that
is not listed here answers 404, as it would on a cluster without that CRD.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from typing import Any

# Every resource accepts these; the real server adds per-resource ones (pods: spec.nodeName...).
COMMON_FIELD_SELECTORS = frozenset({"metadata.name", "metadata.namespace"})
STANDARD_VERBS = (
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
)


@dataclasses.dataclass(frozen=True, kw_only=True)
class ResourceSpec:
    """One served resource: the identity in URLs plus the server-side behaviour flags."""

    group: str  # "" for the core group
    version: str
    plural: str
    kind: str
    namespaced: bool
    status: bool = False  # has a /status subresource (writes are isolated)
    custom: bool = False  # served from a CRD (affects list item shapes, patch types, DELETE)
    singular: str = ""
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    field_selectors: frozenset[str] = frozenset()  # beyond metadata.name/namespace
    delete_returns_object: bool = False  # else DELETE answers with a Status (as for ConfigMaps)
    generation: bool = (
        False  # tracks metadata.generation (workloads, pods, every CR; not ConfigMaps)
    )

    @property
    def key(self) -> str:
        """A unique string id: ``group/version/plural`` (``v1/pods`` for the core group)."""
        return f"{self.api_version}/{self.plural}"

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def qualified(self) -> str:
        """The name in the server's messages: ``pods``, ``leases.coordination.k8s.io``."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def selectable_fields(self) -> frozenset[str]:
        return COMMON_FIELD_SELECTORS | self.field_selectors

    @property
    def singular_name(self) -> str:
        return self.singular or self.kind.lower()


# Templates completed with dataclasses.replace(), which mypy checks field by field.
_CORE = ResourceSpec(group="", version="v1", plural="", kind="", namespaced=True)
_CUSTOM = ResourceSpec(
    group="",
    version="",
    plural="",
    kind="",
    namespaced=True,
    status=True,
    custom=True,
    delete_returns_object=True,  # the custom-resource store returns the object it deleted
    generation=True,
)


def _core(plural: str, kind: str, **flags: Any) -> ResourceSpec:
    return dataclasses.replace(_CORE, plural=plural, kind=kind, **flags)


def _crd(group_version: str, plural: str, kind: str, **flags: Any) -> ResourceSpec:
    group, version = group_version.split("/")
    return dataclasses.replace(
        _CUSTOM, group=group, version=version, plural=plural, kind=kind, **flags
    )


POD_FIELDS = frozenset(
    {
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "spec.hostNetwork",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
    }
)

CORE: tuple[ResourceSpec, ...] = (
    _core(
        "pods",
        "Pod",
        namespaced=True,
        status=True,
        short_names=("po",),
        categories=("all",),
        field_selectors=POD_FIELDS,
        delete_returns_object=True,
        generation=True,  # since 1.33
    ),
    _core(
        "namespaces",
        "Namespace",
        namespaced=False,
        status=True,
        short_names=("ns",),
        field_selectors=frozenset({"status.phase"}),
        delete_returns_object=True,
    ),
    _core(
        "nodes",
        "Node",
        namespaced=False,
        status=True,
        short_names=("no",),
        field_selectors=frozenset({"spec.unschedulable"}),
    ),
    _core(
        "services",
        "Service",
        namespaced=True,
        status=True,
        short_names=("svc",),
        categories=("all",),
    ),
    _core("secrets", "Secret", namespaced=True, field_selectors=frozenset({"type"})),
    _core("configmaps", "ConfigMap", namespaced=True, short_names=("cm",)),
    _core("serviceaccounts", "ServiceAccount", namespaced=True, short_names=("sa",)),
    _core("events", "Event", namespaced=True, short_names=("ev",)),
)

APPS: tuple[ResourceSpec, ...] = (
    ResourceSpec(
        group="apps",
        version="v1",
        plural="daemonsets",
        kind="DaemonSet",
        namespaced=True,
        status=True,
        short_names=("ds",),
        categories=("all",),
        generation=True,
    ),
    ResourceSpec(
        group="apps",
        version="v1",
        plural="deployments",
        kind="Deployment",
        namespaced=True,
        status=True,
        short_names=("deploy",),
        categories=("all",),
        generation=True,
    ),
    ResourceSpec(
        group="coordination.k8s.io",
        version="v1",
        plural="leases",
        kind="Lease",
        namespaced=True,
    ),
)

GATEWAYS: tuple[ResourceSpec, ...] = (
    _crd(
        "gateway.networking.k8s.io/v1",
        "gatewayclasses",
        "GatewayClass",
        namespaced=False,
        short_names=("gc",),
    ),
    _crd(
        "gateway.networking.k8s.io/v1", "gateways", "Gateway", namespaced=True, short_names=("gtw",)
    ),
    _crd("gateway.networking.k8s.io/v1", "httproutes", "HTTPRoute", namespaced=True),
    _crd("gateway.envoyproxy.io/v1alpha1", "envoyproxies", "EnvoyProxy", namespaced=True),
    _crd(
        "gateway.envoyproxy.io/v1alpha1",
        "backendtrafficpolicies",
        "BackendTrafficPolicy",
        namespaced=True,
        short_names=("btp",),
    ),
    _crd(
        "gateway.envoyproxy.io/v1alpha1",
        "backends",
        "Backend",
        namespaced=True,
        short_names=("be",),
    ),
    _crd(
        "cert-manager.io/v1",
        "certificates",
        "Certificate",
        namespaced=True,
        short_names=("cert", "certs"),
    ),
)

TAILWIRE: tuple[ResourceSpec, ...] = (
    _crd("tailscale.rajsingh.info/v1alpha1", "egressgroups", "EgressGroup", namespaced=False),
    _crd(
        "gateway.tailscale.com/v1alpha1", "tailscalegateways", "TailscaleGateway", namespaced=True
    ),
    _crd(
        "gateway.tailscale.com/v1alpha1", "tailscaletailnets", "TailscaleTailnet", namespaced=False
    ),
)

CRD = ResourceSpec(
    group="apiextensions.k8s.io",
    version="v1",
    plural="customresourcedefinitions",
    kind="CustomResourceDefinition",
    namespaced=False,
    status=True,
    short_names=("crd", "crds"),
    generation=True,
)

DEFAULT: tuple[ResourceSpec, ...] = (*CORE, *APPS, CRD, *GATEWAYS, *TAILWIRE)


class Catalog:
    """The mutable set of served resources, keyed by ``group/version/plural``."""

    def __init__(self, specs: Iterable[ResourceSpec] = ()) -> None:
        self._specs: dict[str, ResourceSpec] = {}
        for spec in specs:
            self.install(spec)

    def __iter__(self) -> Iterator[ResourceSpec]:
        return iter(list(self._specs.values()))

    def __contains__(self, spec: ResourceSpec) -> bool:
        return self._specs.get(spec.key) == spec

    def install(self, spec: ResourceSpec) -> None:
        self._specs[spec.key] = spec

    def uninstall(self, spec: ResourceSpec) -> None:
        self._specs.pop(spec.key, None)

    def lookup(self, *, group: str, version: str, plural: str) -> ResourceSpec | None:
        """Find a served resource by its URL parts."""
        return self._specs.get(f"{group}/{version}/{plural}" if group else f"{version}/{plural}")

    def by_kind(self, *, api_version: str, kind: str) -> ResourceSpec | None:
        for spec in self._specs.values():
            if spec.api_version == api_version and spec.kind == kind:
                return spec
        return None

    def find(self, ref: str | ResourceSpec) -> ResourceSpec:
        """Resolve what a test writes.

        ``pods``, ``po``, ``v1/pods``, ``apps/v1/deployments``, ``leases.coordination.k8s.io``.
        """
        if isinstance(ref, ResourceSpec):
            return ref
        if "/" in ref:
            *group_parts, version, plural = ref.split("/")
            found = self.lookup(group="/".join(group_parts), version=version, plural=plural)
            candidates = [found] if found is not None else []
        elif "." in ref:
            plural, group = ref.split(".", 1)
            candidates = [s for s in self._specs.values() if (s.plural, s.group) == (plural, group)]
        else:
            candidates = [s for s in self._specs.values() if ref in (s.plural, *s.short_names)]
        if len(candidates) != 1:
            what = "ambiguous" if candidates else "not served"
            raise LookupError(f"resource {ref!r} is {what}: {[c.key for c in candidates]}")
        return candidates[0]

    def groups(self) -> dict[str, list[str]]:
        """Served versions per API group (the core group is ``""``), in installation order."""
        result: dict[str, list[str]] = {}
        for spec in self._specs.values():
            versions = result.setdefault(spec.group, [])
            if spec.version not in versions:
                versions.append(spec.version)
        return result
