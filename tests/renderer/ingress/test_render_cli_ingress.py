"""`tailwire render` covers TailscaleGateways: Services come from `--cluster` (or the same
files), the output holds the stack, the routes and the status document, byte-for-byte
stable across runs."""

from __future__ import annotations

import io

import yaml

from tailwire.cli import rendering as cli_rendering
from tests.renderer.ingress import support


def _render(*resources: str, cluster: tuple[str, ...] = ()) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli_rendering.render_files(
        resources=list(resources), cluster=list(cluster), output=None, out=out, err=err
    )
    return code, out.getvalue()


def test_render_prints_the_homelab_stack_and_its_status() -> None:
    code, text = _render(str(support.EXAMPLES / "homelab-stack.yaml"))
    assert code == 0
    documents = [d for d in yaml.safe_load_all(text) if d]
    kinds = [d["kind"] for d in documents]
    for kind in ("GatewayClass", "EnvoyProxy", "Certificate", "Gateway", "Service", "HTTPRoute"):
        assert kind in kinds
    hosts = sorted(h for d in documents if d["kind"] == "HTTPRoute" for h in d["spec"]["hostnames"])
    assert hosts[0] == "docs.sudhanva.me"
    (status,) = [d for d in documents if d["kind"] == "TailscaleGateway"]
    assert status["status"]["gatewayInfo"]["routeCount"] == 4
    assert _render(str(support.EXAMPLES / "homelab-stack.yaml")) == (code, text)


def test_render_reads_services_from_the_cluster_file() -> None:
    code, text = _render(
        str(support.EXAMPLES / "tailscalegateway-basic.yaml"),
        cluster=(str(support.SEED_CLUSTER),),
    )
    assert code == 0
    routes = [d for d in yaml.safe_load_all(text) if d and d["kind"] == "HTTPRoute"]
    assert sorted(r["spec"]["hostnames"][0] for r in routes) == [
        "api.company.ts.net",
        "web.company.ts.net",
    ]


def test_render_refuses_an_invalid_tailscale_gateway_with_the_field() -> None:
    code, text = _render(str(support.GOLDEN / "invalid-gateway.yaml"))
    assert code == 1
    assert "TailscaleGateway/broken: spec.tailnets[0].routeGeneration.ingress.hostPattern" in text
