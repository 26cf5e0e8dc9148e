"""hostPattern is real: placeholders expand per Service, unknown placeholders and patterns
that cannot form a DNS name are refused with the field named, and hosts past the DNS
length limits get no route but a finding."""

from __future__ import annotations

import pydantic
import pytest

from tailwire.services.renderer.ingress import findings, rendering
from tailwire.shared.resources import loading, tailscalegateway
from tests.renderer.ingress import support


def _hosts(rendered: rendering.Rendered) -> list[str]:
    return sorted(h for r in support.of_kind(rendered, "HTTPRoute") for h in r["spec"]["hostnames"])


def test_all_three_placeholders_expand_per_service_and_tailnet() -> None:
    gw = support.gateway(
        support.spec(support.tailnet_entry("a", host="{service}-{namespace}.{tailnet}.example.com"))
    )
    rendered = support.render(gw, support.snapshots(support.service("api"), support.service("web")))
    assert _hosts(rendered) == ["api-apps.a.example.com", "web-apps.a.example.com"]


def test_path_prefix_placeholders_expand_too() -> None:
    entry = support.tailnet_entry("a", host="{service}.example.com", pathPrefix="/{namespace}/")
    rendered = support.render(
        support.gateway(support.spec(entry)), support.snapshots(support.service("api"))
    )
    (route,) = support.of_kind(rendered, "HTTPRoute")
    assert route["spec"]["rules"][0]["matches"] == [
        {"path": {"type": "PathPrefix", "value": "/apps/"}}
    ]


def test_html_entity_braces_of_the_seed_read_as_braces() -> None:
    entry = support.tailnet_entry("a", host="&#123;service&#125;.company.ts.net")
    rendered = support.render(
        support.gateway(support.spec(entry)), support.snapshots(support.service("api"))
    )
    assert _hosts(rendered) == ["api.company.ts.net"]


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("{svc}.example.com", "unknown placeholder {svc}"),
        ("{service.example.com", "unbalanced brace"),
        ("static.example.com", "must contain a placeholder"),
        ("{service}_x.example.com", "is not a DNS label"),
        ("{service}." + "a" * 64 + ".com", "at most 63"),
    ],
)
def test_unusable_patterns_are_refused_naming_the_field(pattern: str, message: str) -> None:
    raw = {
        "apiVersion": tailscalegateway.API_VERSION,
        "kind": tailscalegateway.KIND,
        "metadata": {"name": "gw", "namespace": "apps"},
        "spec": support.spec(support.tailnet_entry("a", host=pattern)),
    }
    checked = loading.validate_object(raw)
    assert checked.resource is None
    (problem,) = checked.problems
    assert problem.field == "spec.tailnets[0].routeGeneration.ingress.hostPattern"
    assert message in problem.message
    with pytest.raises(pydantic.ValidationError):
        tailscalegateway.TailscaleGateway.model_validate(raw)


def test_a_host_over_63_characters_per_label_gets_no_route_but_a_finding() -> None:
    long_name = "s" * 60
    entry = support.tailnet_entry("a", host="{service}-{namespace}.example.com")
    rendered = support.render(
        support.gateway(support.spec(entry)),
        support.snapshots(support.service(long_name), support.service("ok")),
    )
    assert _hosts(rendered) == ["ok-apps.example.com"]
    (refused,) = [p for p in rendered.problems if p.category is findings.Category.REFUSED]
    assert refused.field == "spec.tailnets[0].routeGeneration.ingress.hostPattern"
    assert f"apps/{long_name}" in refused.message
    assert "at most 63" in refused.message
    degraded = support.condition(rendered, "Degraded")
    assert (degraded.status, degraded.reason) == ("True", "RoutesRefused")
    assert rendered.status.service_info is not None
    assert rendered.status.service_info.unhealthy_services == 1


def test_a_host_over_253_characters_in_total_gets_no_route() -> None:
    suffix = ".".join(["x" * 60] * 3)  # 182 characters
    entry = support.tailnet_entry("a", host="{service}.{namespace}." + suffix)
    namespace = "n" * 63
    rendered = support.render(
        support.gateway(
            support.spec(
                entry,
            ),
            namespace=namespace,
        ),
        support.snapshots(support.service("s" * 20, namespace=namespace)),
    )
    assert support.of_kind(rendered, "HTTPRoute") == []
    (refused,) = [p for p in rendered.problems if p.category is findings.Category.REFUSED]
    assert "at most 253" in refused.message


def test_services_without_a_web_port_are_not_selected_by_default() -> None:
    entry = support.tailnet_entry("a", host="{service}.example.com")
    rendered = support.render(
        support.gateway(support.spec(entry)),
        support.snapshots(
            support.service("db", port_name="postgres", port=5432), support.service("api")
        ),
    )
    assert _hosts(rendered) == ["api.example.com"]


def test_a_label_selector_picks_services_and_their_first_tcp_port() -> None:
    entry = support.tailnet_entry(
        "a",
        host="{service}.example.com",
        serviceSelector={"matchLabels": {"expose": "tailnet"}},
    )
    rendered = support.render(
        support.gateway(support.spec(entry)),
        support.snapshots(
            support.service("db", port_name="sql", port=5432, labels={"expose": "tailnet"}),
            support.service("api"),
        ),
    )
    (route,) = support.of_kind(rendered, "HTTPRoute")
    assert route["spec"]["hostnames"] == ["db.example.com"]
    assert route["spec"]["rules"][0]["backendRefs"][0]["port"] == 5432


def test_an_https_only_service_is_routed_with_a_note_about_backend_tls() -> None:
    entry = support.tailnet_entry("a", host="{service}.example.com")
    rendered = support.render(
        support.gateway(support.spec(entry)),
        support.snapshots(support.service("vault", port_name="https", port=8200)),
    )
    assert _hosts(rendered) == ["vault.example.com"]
    (note,) = [p for p in rendered.problems if p.category is findings.Category.NOT_ENFORCED]
    assert "BackendTLSPolicy" in note.message
