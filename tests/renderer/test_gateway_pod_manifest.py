"""The gateway DaemonSet's pod: which tailscale image it runs (`TAILWIRE_GATEWAY_IMAGE`, by
default the version the tests run) and how its netns gets forwarding (a privileged init
container, since a non-privileged nodeagent cannot write the gateway's `/proc/sys`)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pydantic
import pytest
import yaml

from tailwire.cli import rendering as cli_rendering
from tailwire.services.renderer import app, view
from tailwire.services.renderer.egress import options, rendering
from tailwire.shared import settings
from tests.renderer import helpers

TESTED_IMAGE = "ghcr.io/tailscale/tailscale:v1.102.5"
ROOT = Path(__file__).resolve().parents[2]


def daemon_set(opts: options.Options) -> dict[str, Any]:
    v = view.ClusterView()
    for obj in (helpers.group("peers", helpers.PEERS_SPEC), helpers.pod("a", node_name="n1")):
        v.apply(obj)
    result = rendering.render_egress(view=v, opts=opts)
    return next(m for m in result.manifests if m["kind"] == "DaemonSet")


def containers(ds: dict[str, Any]) -> list[dict[str, Any]]:
    spec = ds["spec"]["template"]["spec"]
    return [*spec.get("initContainers", []), *spec["containers"]]


def test_the_default_gateway_image_is_the_tested_tailscale(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("TAILWIRE_GATEWAY_IMAGE", raising=False)
    assert settings.GatewaySettings().gateway_image == TESTED_IMAGE
    assert options.Options().gateway_image == TESTED_IMAGE
    ds = daemon_set(app.default_options())
    assert {c["image"] for c in containers(ds)} == {TESTED_IMAGE}


def test_the_gateway_image_setting_reaches_every_container_of_the_daemonset(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mirror = "registry.example.com:5000/mirror/tailscale:v1.102.9"
    monkeypatch.setenv("TAILWIRE_GATEWAY_IMAGE", mirror)
    ds = daemon_set(app.default_options())
    assert {c["image"] for c in containers(ds)} == {mirror}
    # `tailwire render` prints the same template as the running renderer applies.
    out, err = io.StringIO(), io.StringIO()
    code = cli_rendering.render_files(
        resources=[str(ROOT / "examples/egressgroup-peers.yaml")],
        cluster=[str(Path(__file__).parent / "data" / "cluster.yaml")],
        output=None,
        out=out,
        err=err,
    )
    assert code == 0, out.getvalue()
    (rendered,) = [d for d in yaml.safe_load_all(out.getvalue()) if d["kind"] == "DaemonSet"]
    assert {c["image"] for c in containers(rendered)} == {mirror}


@pytest.mark.parametrize("bad", ["", "tailscale image", "-x", "ghcr.io/tailscale/tailscale:"])
def test_a_gateway_image_that_is_no_image_reference_is_refused_by_name(
    monkeypatch: pytest.MonkeyPatch, bad: str
) -> None:
    monkeypatch.setenv("TAILWIRE_GATEWAY_IMAGE", bad)
    with pytest.raises(pydantic.ValidationError) as caught:
        settings.GatewaySettings()
    assert settings.describe_error(caught.value).startswith("TAILWIRE_GATEWAY_IMAGE: ")
    out, err = io.StringIO(), io.StringIO()
    code = cli_rendering.render_files(
        resources=[str(ROOT / "examples/egressgroup-peers.yaml")], output=None, out=out, err=err
    )
    assert code == 1
    assert "TAILWIRE_GATEWAY_IMAGE" in out.getvalue()


def test_the_gateway_pod_sets_its_sysctls_in_a_privileged_init_container_and_only_there() -> None:
    spec = daemon_set(options.Options())["spec"]["template"]["spec"]
    first, *_ = spec["initContainers"]
    # Before tailscaled starts, inside the pod's own netns: a non-privileged nodeagent cannot
    # write these (container runtimes mount /proc/sys read-only), a privileged container can.
    assert first["name"] == "sysctls"
    assert first["image"] == options.Options().gateway_image
    command = first["command"]
    assert command[:2] == ["sysctl", "-w"]
    assert sorted(command[2:]) == sorted([
        "net.ipv4.ip_forward=1",
        "net.ipv6.conf.all.forwarding=1",
        "net.ipv4.conf.all.rp_filter=0",
        "net.ipv4.conf.default.rp_filter=0",
    ])  # fmt: skip
    assert first["securityContext"] == {"privileged": True}
    privileged = [
        c["name"] for c in containers({"spec": {"template": {"spec": spec}}})
        if (c.get("securityContext") or {}).get("privileged")
    ]  # fmt: skip
    assert privileged == ["sysctls"]
    (tailscaled,) = spec["containers"]
    # Routes and the TUN (tailscaled makes /dev/net/tun where the runtime did not).
    assert tailscaled["securityContext"] == {"capabilities": {"add": ["NET_ADMIN", "MKNOD"]}}
