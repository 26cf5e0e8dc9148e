"""Egress targets: Services naming a tailnet host, routed on every tailnet with egress
enabled unless pinned to one with the `tailwire.dev/tailnet` label; never an ingress backend."""

from __future__ import annotations

from typing import Any

from tests.renderer.ingress import support


def _egress_tailnet(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "tailscaleTailnetRef": {"kind": "TailscaleTailnet", "name": name},
        "routeGeneration": {
            "ingress": {"enabled": True, "hostPattern": "{service}.in.example.com"},
            "egress": {"enabled": True, "hostPattern": "{service}.{tailnet}.out.example.com"},
        },
    }


def test_a_pinned_target_is_routed_on_its_tailnet_only_and_never_as_ingress() -> None:
    gw = support.gateway(support.spec(_egress_tailnet("a"), _egress_tailnet("b")))
    pinned = support.service(
        "wiki",
        labels={"tailwire.dev/tailnet": "b"},
        annotations={"tailscale.com/tailnet-fqdn": "wiki.b.ts.net."},
    )
    shared = support.service(
        "git", annotations={"tailscale.com/tailnet-fqdn": "git.example.ts.net"}
    )
    rendered = support.render(gw, support.snapshots(pinned, shared))
    hosts = sorted(
        h for r in support.of_kind(rendered, "HTTPRoute") for h in r["spec"]["hostnames"]
    )
    assert hosts == ["git.a.out.example.com", "git.b.out.example.com", "wiki.b.out.example.com"]
    backends = {
        b["spec"]["endpoints"][0]["fqdn"]["hostname"] for b in support.of_kind(rendered, "Backend")
    }
    assert backends == {"wiki.b.ts.net", "git.example.ts.net"}
    assert [line for m in rendered.manifests for line in support.schema_errors(m)] == []
