"""Route generation as properties (hypothesis): whatever the Services, tailnets and
priorities, every hostname is served by exactly one valid route, every selected Service is
either routed or named in a finding, and the winner of a shared hostname has the highest
priority."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tailwire.services.renderer.ingress import findings, rendering
from tests.renderer.ingress import support

label = st.from_regex(r"[a-z][a-z0-9]{0,20}(-[a-z0-9]{1,20}){0,2}", fullmatch=True)
patterns = st.sampled_from(
    [
        "{service}.example.com",
        "{service}-{namespace}.example.com",
        "{service}.{tailnet}.example.com",
        "{service}-{namespace}-{tailnet}.ts.example.com",
    ]
)


@settings(max_examples=150, deadline=None)
@given(
    services=st.lists(st.tuples(label, st.sampled_from(["apps", "team-x"])), max_size=8),
    tailnets=st.lists(st.tuples(patterns, st.integers(-5, 5)), min_size=1, max_size=3),
)
def test_every_host_has_one_valid_route_and_nothing_is_lost(
    services: list[tuple[str, str]], tailnets: list[tuple[str, int]]
) -> None:
    entries = [
        support.tailnet_entry(
            f"t{i}", host=pattern, priority=priority, namespaces=["apps", "team-x"]
        )
        for i, (pattern, priority) in enumerate(tailnets)
    ]
    gw = support.gateway(support.spec(*entries))
    snapshots = support.snapshots(
        *(support.service(name, namespace=ns) for name, ns in dict.fromkeys(services)),
        tailnets=tuple(support.tailnet(f"t{i}") for i in range(len(tailnets))),
    )
    rendered: rendering.Rendered = support.render(gw, snapshots)
    routes = support.of_kind(rendered, "HTTPRoute")
    hosts = [h for r in routes for h in r["spec"]["hostnames"]]
    assert len(hosts) == len(set(hosts))
    assert [line for r in routes for line in support.schema_errors(r)] == []
    candidates = len(dict.fromkeys(services)) * len(tailnets)
    reported = [
        p
        for p in rendered.problems
        if p.category in (findings.Category.CONFLICT, findings.Category.REFUSED)
    ]
    assert len(routes) + len(reported) == candidates
    priority = {f"t{i}": p for i, (_, p) in enumerate(tailnets)}
    for conflict in (p for p in reported if p.category is findings.Category.CONFLICT):
        winner, loser = conflict.message.split(" wins over ")
        assert int(winner.split("(priority ")[1].split(",")[0]) >= int(
            loser.split("(priority ")[1].split(",")[0]
        )
    assert set(priority) == {t.name for t in rendered.status.tailnets}
