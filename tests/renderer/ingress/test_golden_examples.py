"""Golden files: every seed TailscaleGateway example and the homelab stack render to exactly
the committed manifests and status, byte for byte, and every generated object passes the
schema of its kind (Gateway API v1, Envoy Gateway v1alpha1, cert-manager v1, core v1).

Regenerate after an intended change with
`TAILWIRE_UPDATE_GOLDEN=1 .venv/bin/pytest tests/renderer/ingress/test_golden_examples.py`.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from tailwire.services.renderer.ingress import inputs, output
from tests.renderer.ingress import support

CASES = {
    "basic": (support.EXAMPLES / "tailscalegateway-basic.yaml", support.SEED_CLUSTER),
    "multi-tailnet": (
        support.EXAMPLES / "tailscalegateway-multi-tailnet.yaml",
        support.SEED_CLUSTER,
    ),
    "high-availability": (
        support.EXAMPLES / "tailscalegateway-high-availability.yaml",
        support.SEED_CLUSTER,
    ),
    "advanced-routing": (
        support.EXAMPLES / "tailscalegateway-advanced-routing.yaml",
        support.SEED_CLUSTER,
    ),
    "homelab-stack": (support.EXAMPLES / "homelab-stack.yaml", None),
}


def _render_text(example: Path, cluster: Path | None, *, shuffle: bool = False) -> str:
    gateways, snapshots = support.load(example)
    if cluster is not None:
        _, snapshots = support.load(cluster)
    if shuffle:
        rng = random.Random(7)
        snapshots = inputs.Snapshots(
            services=tuple(rng.sample(snapshots.services, len(snapshots.services))),
            gateways=snapshots.gateways[::-1],
            tailnets=snapshots.tailnets[::-1],
            routes=snapshots.routes,
            namespaces=snapshots.namespaces,
        )
    assert len(gateways) == 1
    rendered = support.render(gateways[0], snapshots)
    return output.dump(output.documents(gateways[0], rendered=rendered))


@pytest.mark.parametrize("name", sorted(CASES))
def test_example_renders_to_its_golden_file(name: str) -> None:
    text = _render_text(*CASES[name])
    golden = support.GOLDEN / f"{name}.yaml"
    if os.environ.get("TAILWIRE_UPDATE_GOLDEN") == "1":
        golden.write_text(text, encoding="utf-8")
    assert text == golden.read_text(encoding="utf-8")


@pytest.mark.parametrize("name", sorted(CASES))
def test_rendering_ignores_input_order(name: str) -> None:
    assert _render_text(*CASES[name], shuffle=True) == _render_text(*CASES[name])


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_generated_object_passes_its_kind_schema(name: str) -> None:
    example, cluster = CASES[name]
    gateways, snapshots = support.load(example)
    if cluster is not None:
        _, snapshots = support.load(cluster)
    rendered = support.render(gateways[0], snapshots)
    assert rendered.manifests
    problems = [line for m in rendered.manifests for line in support.schema_errors(m)]
    assert problems == []


def test_the_homelab_stack_is_complete() -> None:
    gateways, snapshots = support.load(support.EXAMPLES / "homelab-stack.yaml")
    rendered = support.render(gateways[0], snapshots)
    kinds = sorted({m["kind"] for m in rendered.manifests})
    assert kinds == ["Certificate", "EnvoyProxy", "Gateway", "GatewayClass", "HTTPRoute", "Service"]
    (proxy,) = support.of_kind(rendered, "EnvoyProxy")
    service = proxy["spec"]["provider"]["kubernetes"]["envoyService"]
    assert service["type"] == "LoadBalancer"
    assert service["loadBalancerClass"] == "tailscale"
    assert service["annotations"] == {
        "tailscale.com/hostname": "gateway-envoy",
        "tailscale.com/tags": "tag:k8s",  # the homelab TailscaleTailnet's device tags
    }
    (internal,) = support.of_kind(rendered, "Service")
    assert internal["metadata"] == {
        **internal["metadata"],
        "name": "gateway-internal",
        "namespace": "envoy-gateway",
    }
    assert internal["spec"]["selector"] == {
        "gateway.envoyproxy.io/owning-gateway-name": "tailscale-gateway",
        "gateway.envoyproxy.io/owning-gateway-namespace": "tailscale",
    }
    hosts = sorted(
        h for r in support.of_kind(rendered, "HTTPRoute") for h in r["spec"]["hostnames"]
    )
    assert hosts == [
        "docs.sudhanva.me",
        "headlamp.sudhanva.me",
        "jellyfin.sudhanva.me",
        "vault.sudhanva.me",
    ]
    # Offline there is no Gateway yet: rendered, waiting for Envoy Gateway to program it.
    ready = support.condition(rendered, "Ready")
    assert (ready.status, ready.reason) == ("False", "Pending")
