"""Resource validation: the seed manifests pass unchanged; bad input names its field."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tailwire.shared.resources import egressgroup, loading, templates

SEEDS = Path(__file__).resolve().parents[3] / "shared" / "seeds"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _lines(manifest: str) -> list[str]:
    return [line for checked in loading.validate_text(manifest) for line in checked.lines()]


def test_seed_reference_manifests_validate_verbatim() -> None:
    """Read straight from the seed document, HTML entities and all."""
    text = (SEEDS / "tailscalegateway-api-reference.md").read_text()
    blocks = [b for b in re.findall(r"```yaml\n(.*?)```", text, re.S) if "metadata:" in b]
    assert len(blocks) == 4
    for block in blocks:
        checked = loading.validate_text(block)
        assert [c.valid for c in checked] == [True], [c.lines() for c in checked]


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_validates(path: Path) -> None:
    assert _lines(path.read_text()) == []


def test_payments_example_keeps_its_values_and_gets_defaults() -> None:
    (checked,) = loading.validate_text((EXAMPLES / "egressgroup-payments.yaml").read_text())
    group = checked.resource
    assert isinstance(group, egressgroup.EgressGroup)
    assert group.spec.mode == "subnet"
    assert group.spec.routes == ["10.0.0.0/8"]
    assert group.spec.exit_node is not None
    assert group.spec.exit_node.target == "exit-fra1.your-org.ts.net"
    assert group.spec.exit_node.allow_lan_access is True
    assert (group.spec.attach, group.spec.datapath, group.spec.tags) == (
        "routed",
        "kernel",
        ["tag:k8s"],
    )


GROUP = """
apiVersion: tailscale.rajsingh.info/v1alpha1
kind: EgressGroup
metadata: {{name: g}}
spec:
  selector: {{podSelector: {{matchLabels: {{app: x}}}}}}
{extra}
"""


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            "  mode: subnet\n  routes: [10.0.0.0/33]",
            "EgressGroup/g: spec.routes[0]: '10.0.0.0/33' has prefix length /33; at most /32",
        ),
        (
            "  mode: subnet\n  routes: [10.0.0.0/8, 300.1.1.1/8]",
            "EgressGroup/g: spec.routes[1]: '300.1.1.1/8' is not a CIDR: '300.1.1.1' is not an IP address",
        ),
        (
            "  mode: subnet\n  routes: [10.1.2.3/8]",
            "EgressGroup/g: spec.routes[0]: '10.1.2.3/8' has host bits set (did you mean 10.0.0.0/8?)",
        ),
        (
            "  routes: [10.0.0.0/8]",
            "EgressGroup/g: spec.routes: routes are only steered in mode: subnet (set spec.mode: subnet)",
        ),
        (
            "  exitNode: {nodeID: ''}",
            "EgressGroup/g: spec.exitNode.nodeID: must not be empty (or set spec.exitNode.name)",
        ),
        ("  mode: bridge", "EgressGroup/g: spec.mode: Input should be 'cgnat' or 'subnet'"),
        ("  tags: [k8s]", "EgressGroup/g: spec.tags[0]: 'k8s' is not a tag (expected tag:<name>)"),
        ("  acceptRoute: true", "EgressGroup/g: spec.acceptRoute: unknown field"),
        (
            "  replicas: 0",
            "EgressGroup/g: spec.replicas: Input should be greater than or equal to 1",
        ),
    ],
)
def test_bad_egress_group_names_the_field(extra: str, expected: str) -> None:
    assert _lines(GROUP.format(extra=extra)) == [expected]


GATEWAY = """
apiVersion: gateway.tailscale.com/v1alpha1
kind: TailscaleGateway
metadata: {{name: gw, namespace: production}}
spec:
  gatewayRef: {{kind: Gateway, name: envoy-gateway}}
  tailnets:
{tailnets}
"""
TAILNET = """  - name: {name}
    tailscaleTailnetRef: {{kind: TailscaleTailnet, name: main}}
    routeGeneration:
      ingress: {{enabled: true, hostPattern: "{pattern}", pathPrefix: "{path}"}}
"""


def _gateway(*tailnets: tuple[str, str, str]) -> str:
    body = "".join(TAILNET.format(name=n, pattern=p, path=x) for n, p, x in tailnets)
    return GATEWAY.format(tailnets=body or "    []")


@pytest.mark.parametrize(
    ("tailnets", "expected"),
    [
        (
            (("a", "{svc}.company.ts.net", "/"),),
            "spec.tailnets[0].routeGeneration.ingress.hostPattern: unknown placeholder {svc}; "
            "allowed: {service}, {namespace}, {tailnet}",
        ),
        (
            (("a", "{service}.company.ts.net", "api"),),
            "spec.tailnets[0].routeGeneration.ingress.pathPrefix: must start with '/'",
        ),
        (
            (("a", "{service}_x.company.ts.net", "/"),),
            "spec.tailnets[0].routeGeneration.ingress.hostPattern: '{service}_x.company.ts.net' does "
            "not form a DNS name: label 'svc_x' is not a DNS label (lower-case a-z, 0-9, '-')",
        ),
        (
            (("a", "{service}." + "x" * 64 + ".ts.net", "/"),),
            "spec.tailnets[0].routeGeneration.ingress.hostPattern: '{service}."
            + "x" * 64
            + ".ts.net' does not form a DNS name: label 'xxxxxxxxxxxxxxxxxxxx'... is 64 characters; at most 63",
        ),
        (
            (("a", "{service}.a.ts.net", "/"), ("a", "{service}.b.ts.net", "/")),
            "spec.tailnets[1].name: duplicate tailnet name 'a' (also spec.tailnets[0])",
        ),
        ((), "spec.tailnets: List should have at least 1 item after validation, not 0"),
    ],
)
def test_bad_tailscale_gateway_names_the_field(
    tailnets: tuple[tuple[str, str, str], ...], expected: str
) -> None:
    assert _lines(_gateway(*tailnets)) == [f"TailscaleGateway/gw: {expected}"]


def test_html_entity_braces_are_read_as_braces() -> None:
    assert templates.normalize("&#123;service&#125;.company.ts.net") == "{service}.company.ts.net"
    assert _lines(_gateway(("a", "&#123;service&#125;.company.ts.net", "/"))) == []


def test_host_pattern_expands_known_placeholders() -> None:
    host = templates.expand(
        "{service}-{namespace}.{tailnet}",
        service="web",
        namespace="prod",
        tailnet="tail1234.ts.net",
    )
    assert host == "web-prod.tail1234.ts.net"
    with pytest.raises(ValueError, match=r"unknown placeholder \{request_id\}"):
        templates.expand("{request_id}.x", service="a", namespace="b", tailnet="c")


def test_unreadable_yaml_and_missing_kind_are_reported() -> None:
    assert _lines("apiVersion: v1\nmetadata: {name: x}\n") == ["<no kind>/x: kind: required"]
    assert _lines(
        "apiVersion: gateway.tailscale.com/v1alpha1\nkind: Widget\nmetadata: {name: w}\n"
    ) == ["Widget/w: kind: unknown kind Widget in gateway.tailscale.com/v1alpha1"]


def test_list_documents_are_unpacked() -> None:
    text = "apiVersion: v1\nkind: List\nitems:\n" + "".join(
        f"- apiVersion: v1\n  kind: Namespace\n  metadata: {{name: ns{i}}}\n" for i in range(3)
    )
    assert [c.name for c in loading.validate_text(text)] == ["ns0", "ns1", "ns2"]


@given(st.lists(st.text(max_size=20), max_size=5))
def test_arbitrary_routes_never_raise_outside_validation(routes: list[str]) -> None:
    manifest = {
        "apiVersion": egressgroup.API_VERSION,
        "kind": "EgressGroup",
        "metadata": {"name": "g"},
        "spec": {"selector": {}, "mode": "subnet", "routes": routes},
    }
    checked = loading.validate_object(manifest)
    assert checked.valid or all(line.startswith("EgressGroup/g: spec.") for line in checked.lines())
