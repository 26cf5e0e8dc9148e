"""`tailwire render` on the seed examples: golden files, determinism, invalid input.

Regenerate the golden files after an intended change with
`TAILWIRE_UPDATE_GOLDEN=1 .venv/bin/pytest tests/renderer/test_render_golden.py`.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from tailwire.cli import main, rendering

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).parent / "data"
GOLDEN = Path(__file__).parent / "golden"
PAYMENTS = str(ROOT / "examples/egressgroup-payments.yaml")
PEERS = str(ROOT / "examples/egressgroup-peers.yaml")
CLUSTER = str(DATA / "cluster.yaml")


def render(
    *resources: str, cluster: tuple[str, ...] = (CLUSTER,), output: Path | None = None
) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    code = rendering.render_files(
        resources=list(resources), cluster=list(cluster), output=output, out=out, err=err
    )
    return code, out.getvalue()


@pytest.mark.parametrize(
    ("name", "resources"),
    [("payments", (PAYMENTS,)), ("minimal", (PEERS,)), ("both", (PAYMENTS, PEERS))],
)
def test_render_matches_golden_file(name: str, resources: tuple[str, ...]) -> None:
    code, text = render(*resources)
    assert code == 0
    golden = GOLDEN / f"{name}.yaml"
    if os.environ.get("TAILWIRE_UPDATE_GOLDEN") == "1":
        golden.write_text(text, encoding="utf-8")
    assert text == golden.read_text(encoding="utf-8")


def test_render_is_byte_for_byte_deterministic_whatever_the_input_order(tmp_path: Path) -> None:
    documents = list(yaml.safe_load_all(Path(CLUSTER).read_text()))
    items = documents[0]["items"]
    shuffled = tmp_path / "cluster.yaml"
    shuffled.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": items[::-1]}))
    first = render(PAYMENTS, PEERS)
    assert render(PEERS, PAYMENTS, cluster=(str(shuffled),)) == first
    assert render(PAYMENTS, PEERS) == first


def test_payments_plan_routes_carve_outs_and_exit_node() -> None:
    _, text = render(PAYMENTS)
    plans = {
        d["metadata"]["name"]: d["spec"]
        for d in yaml.safe_load_all(text)
        if d["kind"] == "NodePlan"
    }
    member = plans["node-a.ec2.internal"]["members"][0]
    assert member["name"] == "api-0"
    assert member["routes"] == ["100.64.0.0/10", "fd7a:115c:a1e0::/48", "10.0.0.0/8"]
    assert member["exit_node"] is True
    assert member["carve_outs"] == ["10.244.0.0/16", "10.96.0.0/12"]
    assert plans["node-c.ec2.internal"] == {
        **plans["node-c.ec2.internal"],
        "gateways": [],
        "members": [],
    }


def test_output_directory_gets_one_file_per_object(tmp_path: Path) -> None:
    code, _ = render(PAYMENTS, PEERS, output=tmp_path / "out")
    assert code == 0
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert "configmap-tailwire-system-tailwire-gw-payments.yaml" in names
    assert "daemonset-tailwire-system-tailwire-gw-peers.yaml" in names
    assert "nodeplan-node-a.ec2.internal.yaml" in names
    _, stdout = render(PAYMENTS, PEERS)
    assert "---\n".join((tmp_path / "out" / n).read_text() for n in _ordered(stdout)) == stdout


def _ordered(stdout: str) -> list[str]:
    from tailwire.services.renderer import domain

    return [domain.file_name(d) for d in yaml.safe_load_all(stdout)]


def test_invalid_input_exits_1_with_the_messages_of_validate(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: tailscale.rajsingh.info/v1alpha1\nkind: EgressGroup\nmetadata: {name: bad}\n"
        "spec:\n  selector: {}\n  mode: subnet\n  routes: [10.0.0.1/8]\n"
    )
    runner = CliRunner()
    rendered = runner.invoke(main.app, ["render", "-f", str(bad)])
    validated = runner.invoke(main.app, ["validate", "-f", str(bad)])
    assert rendered.exit_code == 1
    assert "EgressGroup/bad: spec.routes[0]:" in rendered.stdout
    assert rendered.stdout == validated.stdout


def test_render_command_prints_to_stdout() -> None:
    result = CliRunner().invoke(
        main.app, ["render", "-f", PEERS, "--cluster-cidrs", "10.244.0.0/16"]
    )
    assert result.exit_code == 0
    assert "kind: DaemonSet" in result.stdout


def test_cluster_name_reaches_the_rendered_hostnames_and_a_bad_one_is_refused() -> None:
    runner = CliRunner()
    named = runner.invoke(
        main.app, ["render", "-f", PAYMENTS, "--cluster", CLUSTER, "--cluster-name", "eu1"]
    )
    assert named.exit_code == 0
    assert "hostname: tailwire-eu1-payments-node-a" in named.stdout
    assert "tailwire-payments-node-a" not in named.stdout
    bad = runner.invoke(main.app, ["render", "-f", PAYMENTS, "--cluster-name", "EU_1"])
    assert bad.exit_code == 1
    assert bad.stdout.startswith("--cluster-name: cluster_name: 'EU_1' is not a lower-case")
