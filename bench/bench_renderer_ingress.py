"""Renderer (ingress side) benchmark: TailscaleGateways with many Services.

Pure computation, no bus, no network; prints JSON. One TailscaleGateway per namespace, three
tailnets each (two share a host pattern, so every Service is a priority conflict), policies
on every route; Services spread over the namespaces, one in seven an egress target.

Run: .venv/bin/python bench/bench_renderer_ingress.py [--services N --gateways N --rounds N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

from tailwire.services.renderer import domain, view
from tailwire.services.renderer.ingress import computation, output
from tailwire.shared.events import cluster


def _tailnet(name: str, host: str, priority: int, egress: bool) -> dict[str, Any]:
    generation: dict[str, Any] = {"ingress": {"enabled": True, "hostPattern": host}}
    if egress:
        generation["egress"] = {
            "enabled": True,
            "hostPattern": "{service}.egress.example.com",
            "pathPrefix": "/api/{service}/",
            "rewriteRules": [{"from": "/api/{service}/", "to": "/"}],
            "timeout": "30s",
            "retryPolicy": {"numRetries": 3, "perTryTimeout": "10s"},
        }
    return {
        "name": name,
        "tailscaleTailnetRef": {"kind": "TailscaleTailnet", "name": name},
        "priority": priority,
        "routeGeneration": generation,
    }


def build_view(*, services: int, gateways: int) -> view.ClusterView:
    v = view.ClusterView()
    for name in ("prod", "staging", "lab"):
        v.apply(
            cluster.TailscaleTailnetSnapshot(
                meta=cluster.Meta(uid=name, name=name),
                api_version="gateway.tailscale.com/v1alpha1",
                spec={"oauthSecretName": "oauth"},
            )
        )
    v.apply(
        cluster.GatewaySnapshot(
            meta=cluster.Meta(uid="gw", namespace="gateways", name="edge"),
            gateway_class_name="eg",
            listeners=(cluster.Listener(name="https", port=443, protocol="HTTPS"),),
        )
    )
    for g in range(gateways):
        spec = {
            "gatewayRef": {"kind": "Gateway", "name": "edge", "namespace": "gateways"},
            "tailnets": [
                _tailnet("prod", "{service}-{namespace}.example.com", 100, egress=True),
                _tailnet("staging", "{service}-{namespace}.example.com", 50, egress=False),
                _tailnet("lab", "{service}.{namespace}.lab.example.com", 10, egress=False),
            ],
            "loadBalancing": {
                "strategy": "least_request",
                "healthChecking": {"enabled": True, "interval": "15s"},
                "circuitBreaker": {"enabled": True, "maxConnections": 1000},
            },
        }
        v.apply(
            cluster.TailscaleGatewaySnapshot(
                meta=cluster.Meta(uid=f"tsgw{g}", namespace=f"ns-{g}", name="gw", generation=1),
                api_version="gateway.tailscale.com/v1alpha1",
                spec=spec,
            )
        )
    for s in range(services):
        annotations = (
            {"tailscale.com/tailnet-fqdn": f"host-{s}.tailnet.ts.net"} if s % 7 == 0 else {}
        )
        v.apply(
            cluster.ServiceSnapshot(
                meta=cluster.Meta(
                    uid=f"svc{s}",
                    namespace=f"ns-{s % gateways}",
                    name=f"app-{s}",
                    annotations=annotations,
                ),
                ports=(cluster.ServicePort(name="http", port=80),),
            )
        )
    return v


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--services", type=int, default=5000)
    parser.add_argument("--gateways", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="a small smoke run")
    args = parser.parse_args()
    if args.quick:
        args.services, args.gateways, args.rounds = 100, 2, 1
    v = build_view(services=args.services, gateways=args.gateways)
    source = domain.RenderInput(view=v, cluster_cidrs=(), gateway_namespace="tailwire-system")
    times = []
    result = domain.Rendered()
    for _ in range(args.rounds):
        started = time.perf_counter()
        result = computation.render_ingress(source)
        times.append(time.perf_counter() - started)
    kinds: dict[str, int] = {}
    for manifest in result.manifests:
        kinds[manifest["kind"]] = kinds.get(manifest["kind"], 0) + 1
    started = time.perf_counter()
    text = output.dump([*result.manifests, *result.documents])
    dump_seconds = time.perf_counter() - started
    # One Service added: the whole computation again (the renderer is level-triggered).
    v.apply(
        cluster.ServiceSnapshot(
            meta=cluster.Meta(uid="new", namespace="ns-0", name="new-app"),
            ports=(cluster.ServicePort(name="http", port=80),),
        )
    )
    started = time.perf_counter()
    computation.render_ingress(source)
    one_more = time.perf_counter() - started
    statuses = [d["status"] for d in result.documents]
    print(
        json.dumps(
            {
                "services": args.services,
                "tailscale_gateways": args.gateways,
                "render_seconds_median": round(statistics.median(times), 3),
                "render_seconds_max": round(max(times), 3),
                "render_after_one_new_service_seconds": round(one_more, 3),
                "yaml_dump_seconds": round(dump_seconds, 3),
                "manifests": len(result.manifests),
                "manifests_by_kind": dict(sorted(kinds.items())),
                "yaml_bytes": len(text.encode()),
                "priority_conflicts_reported": sum(
                    1
                    for s in statuses
                    for c in s["conditions"]
                    if c["type"] == "Degraded" and c["reason"] == "PriorityConflict"
                ),
                "routes_per_gateway": statuses[0]["gatewayInfo"]["routeCount"] if statuses else 0,
                "valid": all(
                    c["status"] == "True"
                    for s in statuses
                    for c in s["conditions"]
                    if c["type"] == "Ready"
                ),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
