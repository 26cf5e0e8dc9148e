"""Helpers of the ingress rendering tests: build snapshots and gateways tersely, render the
seed examples, and validate generated objects against the JSON Schemas in `schemas/`."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import jsonschema

from tailwire.services.renderer.ingress import inputs, objects, rendering
from tailwire.shared.events import cluster
from tailwire.shared.resources import loading, tailscalegateway

HERE = Path(__file__).parent
ROOT = HERE.parents[2]
EXAMPLES = ROOT / "examples"
GOLDEN = HERE / "golden"
SCHEMAS = HERE / "schemas"
SEED_CLUSTER = GOLDEN / "cluster-seed.yaml"


def load(path: Path) -> tuple[list[tailscalegateway.TailscaleGateway], inputs.Snapshots]:
    """The TailscaleGateways of a file (all must be valid) and the snapshots of the rest."""
    text = path.read_text(encoding="utf-8")
    checked = loading.validate_text(text)
    problems = [line for c in checked for line in c.lines()]
    assert not problems, problems
    gateways = [
        c.resource for c in checked if isinstance(c.resource, tailscalegateway.TailscaleGateway)
    ]
    return gateways, objects.snapshots_from(loading.iter_documents(text))


def render(
    gateway: tailscalegateway.TailscaleGateway,
    snapshots: inputs.Snapshots,
    *,
    settings: inputs.Settings | None = None,
) -> rendering.Rendered:
    return rendering.render_gateway(
        gateway,
        services=snapshots.services,
        gateways=snapshots.gateways,
        tailnets=snapshots.tailnets,
        routes=snapshots.routes,
        namespaces=snapshots.namespaces,
        settings=settings,
    )


def gateway(
    spec: dict[str, Any], *, name: str = "gw", namespace: str = "apps"
) -> tailscalegateway.TailscaleGateway:
    return tailscalegateway.TailscaleGateway.model_validate(
        {
            "apiVersion": tailscalegateway.API_VERSION,
            "kind": tailscalegateway.KIND,
            "metadata": {"name": name, "namespace": namespace, "generation": 3},
            "spec": spec,
        }
    )


def tailnet_entry(name: str, *, host: str, priority: int = 100, **ingress: Any) -> dict[str, Any]:
    return {
        "name": name,
        "tailscaleTailnetRef": {"kind": "TailscaleTailnet", "name": name},
        "priority": priority,
        "routeGeneration": {"ingress": {"enabled": True, "hostPattern": host, **ingress}},
    }


def spec(*tailnets: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {
        "gatewayRef": {"kind": "Gateway", "name": "edge", "namespace": "gateways"},
        "tailnets": list(tailnets),
        **more,
    }


def service(
    name: str,
    *,
    namespace: str = "apps",
    port_name: str | None = "http",
    port: int = 80,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    deleted: bool = False,
) -> cluster.ServiceSnapshot:
    return cluster.ServiceSnapshot(
        meta=cluster.Meta(
            uid=f"uid-{namespace}-{name}",
            namespace=namespace,
            name=name,
            labels=labels or {},
            annotations=annotations or {},
        ),
        ports=(cluster.ServicePort(name=port_name, port=port),),
        deleted=deleted,
    )


def edge_gateway() -> cluster.GatewaySnapshot:
    return cluster.GatewaySnapshot(
        meta=cluster.Meta(uid="uid-edge", namespace="gateways", name="edge"),
        gateway_class_name="eg",
        listeners=(cluster.Listener(name="https", port=443, protocol="HTTPS"),),
    )


def tailnet(name: str) -> cluster.TailscaleTailnetSnapshot:
    return cluster.TailscaleTailnetSnapshot(
        meta=cluster.Meta(uid=f"uid-{name}", name=name),
        api_version="gateway.tailscale.com/v1alpha1",
        spec={"tailnet": f"{name}.ts.net", "oauthSecretName": "oauth"},
    )


def consenting(name: str, *sources: str) -> cluster.NamespaceSnapshot:
    """Namespace `name`, whose admin lets TailscaleGateways of `sources` write into it."""
    return cluster.NamespaceSnapshot(
        meta=cluster.Meta(
            uid=f"uid-ns-{name}",
            name=name,
            annotations={inputs.ACCEPT_FROM: ",".join(sources)},
        )
    )


# The namespaces the tests' TailscaleGateways (in `apps`) write into besides their own.
CONSENTING = tuple(
    consenting(name, "apps") for name in ("gateways", "envoy-gateway-system", "pki", "team-x")
)


def snapshots(*services: cluster.ServiceSnapshot, **more: Any) -> inputs.Snapshots:
    return inputs.Snapshots.of(
        services=services,
        gateways=more.pop("gateways", (edge_gateway(),)),
        tailnets=more.pop("tailnets", (tailnet("a"), tailnet("b"))),
        routes=more.pop("routes", ()),
        namespaces=more.pop("namespaces", CONSENTING),
    )


def of_kind(rendered: rendering.Rendered, kind: str) -> list[dict[str, Any]]:
    return [m for m in rendered.manifests if m["kind"] == kind]


def condition(rendered: rendering.Rendered, type_: str) -> Any:
    return next(c for c in rendered.status.conditions if c.type == type_)


@functools.cache
def _validator(api_version: str, kind: str) -> jsonschema.protocols.Validator:
    name = f"{api_version.replace('/', '_')}_{kind}.json"
    schema = json.loads((SCHEMAS / name).read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def schema_errors(manifest: dict[str, Any]) -> list[str]:
    """Every schema violation of one generated object, as `kind/name: path: message`."""
    validator = _validator(manifest["apiVersion"], manifest["kind"])
    where = f"{manifest['kind']}/{manifest['metadata'].get('name')}"
    return [
        f"{where}: {'.'.join(str(p) for p in error.absolute_path)}: {error.message}"
        for error in validator.iter_errors(manifest)
    ]
