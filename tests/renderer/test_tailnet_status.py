"""Where a TailscaleTailnet stands, from its spec and the keyminter's last check: its own
status, and the `tailnets[]` and TailnetsReady of the TailscaleGateways that use it."""

from __future__ import annotations

import datetime

import pytest
from faststream.nats import NatsBroker

from tailwire.services.renderer import domain, handlers, tailnets
from tailwire.services.renderer import view as view_module
from tailwire.services.renderer.egress import options
from tailwire.services.renderer.ingress import inputs
from tailwire.shared.events import cluster, keys
from tailwire.shared.resources import common, loading
from tests.renderer.ingress import support

T0 = datetime.datetime(2026, 11, 22, 6, 0, tzinfo=datetime.UTC)


def tailnet(name: str, *, generation: int = 2, **spec: object) -> cluster.TailscaleTailnetSnapshot:
    return cluster.TailscaleTailnetSnapshot(
        meta=cluster.Meta(uid=f"uid-{name}", name=name, generation=generation),
        api_version="gateway.tailscale.com/v1alpha1",
        spec={"tailnet": f"{name}.ts.net", "oauthSecretName": f"{name}-oauth", **spec},
    )


def check(
    name: str,
    *,
    connected: bool,
    generation: int = 2,
    reason: str = "Connected",
    message: str = "",
    last_connected: datetime.datetime | None = T0,
) -> keys.TailnetChecked:
    return keys.TailnetChecked(
        tailnet=name,
        uid=f"uid-{name}",
        generation=generation,
        connected=connected,
        reason=reason,
        message=message,
        checked_at=T0 + datetime.timedelta(minutes=5),
        last_connected=last_connected,
    )


REFUSED = check(
    "lab",
    connected=False,
    reason="AuthenticationFailed",
    message="OAuth client refused (HTTP 401)",
)


@pytest.mark.parametrize(
    ("checks", "state", "why"),
    [
        ({}, tailnets.PENDING, "TailscaleTailnet lab: its control API is not checked yet"),
        ({"lab": check("lab", connected=True)}, tailnets.CONNECTED, ""),
        (
            {"lab": REFUSED},
            tailnets.DISCONNECTED,
            "TailscaleTailnet lab: AuthenticationFailed: OAuth client refused (HTTP 401)",
        ),
        # A check of the previous generation says nothing about the current spec, nor one of
        # a deleted tailnet about the one recreated under its name.
        (
            {"lab": check("lab", connected=True, generation=1)},
            tailnets.PENDING,
            "TailscaleTailnet lab: its control API is not checked yet",
        ),
        (
            {"lab": check("lab", connected=True).model_copy(update={"uid": "uid-before"})},
            tailnets.PENDING,
            "TailscaleTailnet lab: its control API is not checked yet",
        ),
    ],
)
def test_the_state_follows_the_check_of_the_current_generation(
    checks: dict[str, keys.TailnetChecked], state: str, why: str
) -> None:
    found = tailnets.state_of("lab", snapshot=tailnet("lab"), checks=checks)
    assert (found.state, found.why) == (state, why)


def test_missing_and_invalid_tailnets_are_named() -> None:
    assert tailnets.state_of("gone", snapshot=None, checks={}).state == tailnets.NOT_FOUND
    bad = tailnets.state_of("lab", snapshot=tailnet("lab", apiURL="ftp://x"), checks={})
    assert bad.state == tailnets.INVALID
    assert bad.why.startswith("TailscaleTailnet lab: spec.apiURL")


def _source(
    *items: cluster.TailscaleTailnetSnapshot, checks: tailnets.Checks
) -> domain.RenderInput:
    view = view_module.ClusterView()
    for item in items:
        view.apply(item)
    return domain.RenderInput(
        view=view, cluster_cidrs=(), gateway_namespace="tailwire-system", tailnet_checks=checks
    )


def test_a_connected_tailnet_gets_a_ready_status_and_a_summary() -> None:
    rendered = tailnets.render_tailnets(
        _source(
            tailnet("lab", apiURL="https://hs.example.com"),
            checks={"lab": check("lab", connected=True)},
        )
    )
    [(reference, document)] = rendered.statuses
    assert reference == {
        "apiVersion": "gateway.tailscale.com/v1alpha1",
        "kind": "TailscaleTailnet",
        "metadata": {"name": "lab"},
    }
    assert document == {
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "Connected",
                "message": "the control API at https://hs.example.com accepts the credentials "
                "of Secret lab-oauth",
                "observedGeneration": 2,
            }
        ],
        "tailnetInfo": {"name": "lab.ts.net"},
        "lastConnected": "2026-11-22T06:00:00Z",
        "observedGeneration": 2,
    }
    # The document is what the CRD's status schema accepts.
    assert (
        loading.validate_object(
            {**reference, "spec": tailnet("lab").spec, "status": document}
        ).problems
        == ()
    )
    [(subject, summary)] = rendered.summaries
    assert subject == "tailwire.v1.status.tailscaletailnet._.lab"
    assert summary.ready
    assert summary.details == {"backend": "tailscale", "lastConnected": "2026-11-22T06:00:00Z"}


def test_refused_credentials_make_the_tailnet_not_ready_with_the_reason() -> None:
    rendered = tailnets.render_tailnets(_source(tailnet("lab"), checks={"lab": REFUSED}))
    [(_, document)] = rendered.statuses
    [ready] = document["conditions"]
    assert (ready["status"], ready["reason"]) == ("False", "AuthenticationFailed")
    assert "HTTP 401" in ready["message"]
    assert document["lastConnected"] == "2026-11-22T06:00:00Z"  # when it last worked


def test_an_unchecked_tailnet_is_unknown_and_deleted_ones_get_nothing() -> None:
    gone = tailnet("old").model_copy(update={"deleted": True})
    rendered = tailnets.render_tailnets(_source(tailnet("lab"), gone, checks={}))
    [(reference, document)] = rendered.statuses
    assert reference["metadata"]["name"] == "lab"
    assert (document["conditions"][0]["status"], document["conditions"][0]["reason"]) == (
        "Unknown",
        "Pending",
    )
    assert "lastConnected" not in document


def _gateway_status(
    checks: tailnets.Checks,
) -> tuple[dict[str, tuple[str, str | None]], common.Condition]:
    gw = support.gateway(
        support.spec(
            support.tailnet_entry("a", host="{service}.a.example.com"),
            support.tailnet_entry("b", host="{service}.b.example.com"),
        )
    )
    snapshots = support.snapshots(support.service("api"), tailnets=(tailnet("a"), tailnet("b")))
    rendered = support.render(gw, snapshots, settings=inputs.Settings(tailnet_checks=checks))
    states = {t.name: (t.status, t.last_connected) for t in rendered.status.tailnets}
    return states, support.condition(rendered, "TailnetsReady")


def test_a_gateway_reports_each_tailnet_and_is_tailnets_ready_only_when_all_connect() -> None:
    both = {"a": check("a", connected=True), "b": check("b", connected=True)}
    states, condition = _gateway_status(both)
    assert states == {
        "a": ("Connected", "2026-11-22T06:00:00Z"),
        "b": ("Connected", "2026-11-22T06:00:00Z"),
    }
    assert (condition.status, condition.reason, condition.message) == (
        "True",
        "AllTailnetsConnected",
        "all 2 tailnet(s) connected",
    )

    refused = check("b", connected=False, reason="AuthenticationFailed", last_connected=None)
    states, condition = _gateway_status({"a": both["a"], "b": refused})
    assert states["b"] == ("Disconnected", None)
    assert (condition.status, condition.reason) == ("False", "TailnetDisconnected")
    assert condition.message == "TailscaleTailnet b: AuthenticationFailed"

    states, condition = _gateway_status({"a": both["a"]})
    assert states["b"] == ("Pending", None)
    assert (condition.status, condition.reason) == ("Unknown", "Pending")


def test_the_renderer_keeps_the_newest_check_and_when_the_tailnet_last_connected() -> None:
    renderer = handlers.Renderer(broker=NatsBroker(), opts=options.Options(), sync=None)
    connected = check("lab", connected=True)
    renderer.on_tailnet_checked(connected)
    # The keyminter restarted and its first check failed: it cannot know lastConnected.
    later = connected.checked_at + datetime.timedelta(minutes=10)
    failed = REFUSED.model_copy(update={"checked_at": later, "last_connected": None})
    renderer.on_tailnet_checked(failed)
    assert renderer.tailnet_checks["lab"].reason == "AuthenticationFailed"
    assert renderer.tailnet_checks["lab"].last_connected == T0
    renderer.on_tailnet_checked(connected)  # redelivered, older: ignored
    assert renderer.tailnet_checks["lab"].reason == "AuthenticationFailed"
    # Recreated under the same name: the old tailnet's history is not its own.
    recreated = failed.model_copy(
        update={"uid": "uid-new", "checked_at": later + datetime.timedelta(minutes=1)}
    )
    renderer.on_tailnet_checked(recreated)
    assert renderer.tailnet_checks["lab"].last_connected is None
