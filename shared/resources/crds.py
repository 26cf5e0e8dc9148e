"""CustomResourceDefinitions generated from the resource models.

`deploy/crds/*.yaml` are this module's output (`tailwire crds -o deploy/crds`); a test fails
when they are stale. Pydantic's JSON Schema is turned into a Kubernetes *structural* schema:
references inlined, `Optional` as `nullable`, `int | str` as `x-kubernetes-int-or-string`,
free-form maps as `x-kubernetes-preserve-unknown-fields`.
"""

from __future__ import annotations

import dataclasses
import types
from typing import Any

import pydantic
import yaml

from tailwire.shared.resources import egressgroup, tailscalegateway, tailscaletailnet

_READY = '.status.conditions[?(@.type=="Ready")].status'
_READY_REASON = '.status.conditions[?(@.type=="Ready")].reason'


@dataclasses.dataclass(frozen=True, kw_only=True)
class CRD:
    group: str
    version: str
    kind: str
    plural: str
    singular: str
    short_names: tuple[str, ...]
    scope: str
    spec: type[pydantic.BaseModel]
    status: type[pydantic.BaseModel]
    columns: tuple[tuple[str, str, str], ...]  # (name, type, jsonPath)

    @classmethod
    def of(
        cls,
        module: types.ModuleType,
        *,
        spec: type[pydantic.BaseModel],
        status: type[pydantic.BaseModel],
        columns: tuple[tuple[str, str, str], ...],
    ) -> CRD:
        """The CRD of a resource module (its GROUP, VERSION, KIND, PLURAL, ... constants)."""
        return cls(
            group=module.GROUP,
            version=module.VERSION,
            kind=module.KIND,
            plural=module.PLURAL,
            singular=module.SINGULAR,
            short_names=module.SHORT_NAMES,
            scope=module.SCOPE,
            spec=spec,
            status=status,
            columns=columns,
        )

    @property
    def name(self) -> str:
        return f"{self.plural}.{self.group}"

    @property
    def filename(self) -> str:
        return f"{self.group}_{self.plural}.yaml"


CRDS: tuple[CRD, ...] = (
    CRD.of(
        egressgroup,
        spec=egressgroup.EgressGroupSpec,
        status=egressgroup.EgressGroupStatus,
        columns=(
            ("Mode", "string", ".spec.mode"),
            ("Attach", "string", ".spec.attach"),
            ("Pods", "integer", ".status.matchedPods"),
            ("Ready", "string", _READY),
            ("Age", "date", ".metadata.creationTimestamp"),
        ),
    ),
    CRD.of(
        tailscalegateway,
        spec=tailscalegateway.TailscaleGatewaySpec,
        status=tailscalegateway.TailscaleGatewayStatus,
        columns=(
            ("Gateway", "string", ".spec.gatewayRef.name"),
            ("Routes", "integer", ".status.gatewayInfo.routeCount"),
            ("Ready", "string", _READY),
            ("Age", "date", ".metadata.creationTimestamp"),
        ),
    ),
    CRD.of(
        tailscaletailnet,
        spec=tailscaletailnet.TailscaleTailnetSpec,
        status=tailscaletailnet.TailscaleTailnetStatus,
        columns=(
            ("Tailnet", "string", ".spec.tailnet"),
            ("Backend", "string", ".spec.backend"),
            ("Ready", "string", _READY),
            ("Reason", "string", _READY_REASON),
            ("Last Connected", "date", ".status.lastConnected"),
            ("Age", "date", ".metadata.creationTimestamp"),
        ),
    ),
)

_DROP = {"title", "discriminator", "$defs"}


def structural(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Convert one pydantic JSON Schema node into a Kubernetes structural schema node."""
    if "$ref" in schema:
        target = defs[schema["$ref"].split("/")[-1]]
        extra = {k: v for k, v in schema.items() if k != "$ref"}
        return structural({**target, **extra}, defs)
    if "anyOf" in schema:
        options = [o for o in schema["anyOf"] if o.get("type") != "null"]
        nullable = len(options) < len(schema["anyOf"])
        rest = {k: v for k, v in schema.items() if k != "anyOf"}
        types = sorted(o.get("type", "") for o in options)
        if len(options) == 1:
            merged = structural({**options[0], **rest}, defs)
        elif types == ["integer", "string"]:
            merged = {"x-kubernetes-int-or-string": True, **_scalars(rest)}
        else:
            merged = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
        if nullable:
            merged["nullable"] = True
        return merged
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _DROP or (key == "default" and value is None):
            continue
        if key == "const":
            out["enum"] = [value]
        elif key == "properties":
            out["properties"] = {name: structural(sub, defs) for name, sub in value.items()}
        elif key == "items":
            out["items"] = structural(value, defs)
        elif key == "additionalProperties":
            if value is True or value == {}:
                out["x-kubernetes-preserve-unknown-fields"] = True
            elif value is not False:
                out["additionalProperties"] = structural(value, defs)
        else:
            out[key] = value
    if not out.get("type") and "x-kubernetes-int-or-string" not in out:
        if "properties" in out or "additionalProperties" in out:
            out["type"] = "object"
        elif not out.get("enum"):
            return {"x-kubernetes-preserve-unknown-fields": True, **_scalars(out)}
    return out


def _scalars(schema: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in schema.items() if k in ("description", "default")}


def schema_of(model: type[pydantic.BaseModel]) -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True, mode="validation")
    return structural(raw, raw.get("$defs", {}))


def render(crd: CRD) -> dict[str, Any]:
    """The CRD object for one resource."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": crd.name,
            "labels": {"app.kubernetes.io/part-of": "tailwire"},
        },
        "spec": {
            "group": crd.group,
            "names": {
                "kind": crd.kind,
                "listKind": f"{crd.kind}List",
                "plural": crd.plural,
                "singular": crd.singular,
                "shortNames": list(crd.short_names),
                "categories": ["tailwire"],
            },
            "scope": crd.scope,
            "versions": [
                {
                    "name": crd.version,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [
                        {"name": name, "type": kind, "jsonPath": path}
                        for name, kind, path in crd.columns
                    ],
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": schema_of(crd.spec),
                                "status": schema_of(crd.status),
                            },
                        }
                    },
                }
            ],
        },
    }


class _NoAliases(yaml.SafeDumper):
    """Repeated sub-schemas are written out in full: kubectl reads anchors, humans do not."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def render_yaml(crd: CRD) -> str:
    header = (
        "# Generated by `tailwire crds -o deploy/crds` from tailwire.shared.resources;"
        " do not edit.\n"
    )
    body = yaml.dump(render(crd), Dumper=_NoAliases, sort_keys=False, width=100)
    return header + body


def files() -> dict[str, str]:
    """filename -> content, for every CRD."""
    return {crd.filename: render_yaml(crd) for crd in CRDS}
