"""The ingress renderer's output for the seed TailscaleGateway examples, as the running
renderer computes it (`render_ingress` over a view of the files' objects) and applies it.

The cases are those of the golden files (tests/renderer/ingress/test_golden_examples.py): the
four seed examples against the seed cluster (Services, a Gateway, the TailscaleTailnets), and
the homelab stack, which carries its own cluster objects.
"""

from __future__ import annotations

from pathlib import Path

from tailwire.services.renderer import domain, view
from tailwire.services.renderer.ingress import computation
from tailwire.shared.resources import loading

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
SEED_CLUSTER = ROOT / "tests" / "renderer" / "ingress" / "golden" / "cluster-seed.yaml"

CASES: dict[str, tuple[Path, ...]] = {
    "basic": (EXAMPLES / "tailscalegateway-basic.yaml", SEED_CLUSTER),
    "multi-tailnet": (EXAMPLES / "tailscalegateway-multi-tailnet.yaml", SEED_CLUSTER),
    "high-availability": (EXAMPLES / "tailscalegateway-high-availability.yaml", SEED_CLUSTER),
    "advanced-routing": (EXAMPLES / "tailscalegateway-advanced-routing.yaml", SEED_CLUSTER),
    "homelab-stack": (EXAMPLES / "homelab-stack.yaml",),
}


def render(name: str) -> domain.Rendered:
    """What the renderer applies (manifests) and prunes against (scopes) for case `name`."""
    cluster_view = view.ClusterView()
    for path in CASES[name]:
        for raw in loading.iter_documents(path.read_text(encoding="utf-8")):
            snapshot = view.snapshot_from_manifest(raw)
            if snapshot is not None:
                cluster_view.apply(snapshot)
    source = domain.RenderInput(
        view=cluster_view, cluster_cidrs=("10.42.0.0/16",), gateway_namespace="tailwire-system"
    )
    return computation.render_ingress(source)


def of_kind(rendered: domain.Rendered, kind: str) -> list[domain.Manifest]:
    return [m for m in rendered.manifests if m["kind"] == kind]
