"""deploy/monitoring (issue 17): the PodMonitor reaches every tailwire pod's metrics port, the
PrometheusRule carries the alerts of docs/metrics.md, and every metric and label the rules
and the Grafana dashboard use exists: the metric is registered by the code, the label is one
docs/metrics.md lists for it (that page is checked against the code by
tests/docs/test_metrics_documented.py), and each runbook anchor is a section of
docs/operations.md."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tailwire.shared import subjects
from tests.deploy.test_deploy_manifests import DEPLOY, render
from tests.docs.test_metrics_documented import registered

ROOT = DEPLOY.parent
METRICS_DOC = ROOT / "docs" / "metrics.md"
OPERATIONS = ROOT / "docs" / "operations.md"
# Labels Prometheus adds at scrape time or histograms carry.
SCRAPE_LABELS = {"job", "instance", "pod", "namespace", "container", "endpoint", "le"}
_HISTOGRAM = re.compile(r"_(bucket|sum|count)$")
_METRIC = re.compile(r"\btailwire_[a-z0-9_]+")
_MATCHER = re.compile(r"\{([^}]*)\}")
_GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")


def _documented_labels() -> dict[str, set[str]]:
    labels: dict[str, set[str]] = {}
    for name, cell in re.findall(
        r"^\| `(tailwire_[a-z0-9_<>]+)` \| [a-z]+ \| ([^|]*) \|", METRICS_DOC.read_text(), re.M
    ):
        found = {label.strip() for label in cell.split(",") if label.strip()}
        for service in subjects.Service if "<service>" in name else (None,):
            labels[name.replace("<service>", str(service)) if service else name] = found
    return labels


def _expressions() -> list[tuple[str, str]]:
    """(where, PromQL) of every alert and every dashboard panel."""
    objects = render("../deploy/monitoring")
    out = []
    (rule,) = [o for o in objects if o["kind"] == "PrometheusRule"]
    for group in rule["spec"]["groups"]:
        out += [(f"alert {r['alert']}", r["expr"]) for r in group["rules"]]
    dashboard = json.loads((DEPLOY / "monitoring" / "dashboard.json").read_text())
    for panel in dashboard["panels"]:
        out += [(f"panel {panel['title']}", t["expr"]) for t in panel.get("targets", [])]
    return out


def _metric(name: str) -> str:
    base = _HISTOGRAM.sub("", name)
    return base if base in registered() else name


@pytest.mark.parametrize(("where", "expr"), _expressions())
def test_every_metric_and_label_used_exists(where: str, expr: str) -> None:
    assert expr.count("(") == expr.count(")"), where
    assert expr.count("{") == expr.count("}"), where
    documented = _documented_labels()
    names = {_metric(n) for n in _METRIC.findall(expr)}
    if not names:  # Prometheus' own `up` for the PodMonitor's job
        assert re.fullmatch(r'up\{job="tailwire-system/tailwire"\} == 0', expr), where
        return
    missing = names - registered()
    assert not missing, f"{where}: {sorted(missing)} is not registered by the code"
    allowed = set().union(*(documented.get(n, set()) for n in names)) | SCRAPE_LABELS
    used = {m.split("=")[0].split("!")[0].strip() for block in _MATCHER.findall(expr)
            for m in block.split(",") if m.strip()}  # fmt: skip
    used |= {g.strip() for block in _GROUPING.findall(expr) for g in block.split(",") if g.strip()}
    assert used <= allowed, f"{where}: labels {sorted(used - allowed)} not on {sorted(names)}"


def test_the_rule_has_every_documented_alert_and_runbooks_that_exist() -> None:
    objects = render("../deploy/monitoring")
    (rule,) = [o for o in objects if o["kind"] == "PrometheusRule"]
    rules: list[dict[str, Any]] = rule["spec"]["groups"][0]["rules"]
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", title.lower()).replace(" ", "-")
        for title in re.findall(r"^## (.+)$", OPERATIONS.read_text(), re.M)
    }
    for alert in rules:
        assert alert["labels"]["severity"] in {"critical", "warning", "info"}
        assert alert["annotations"]["summary"]
        page, _, anchor = alert["annotations"]["runbook"].partition("#")
        assert page == "docs/operations.md", alert["alert"]
        assert anchor in anchors, alert["alert"]
    # Every row of "What to alert on" has a rule on each metric it names (per service).
    table = METRICS_DOC.read_text().split("| alert | expression (PromQL) | why |")[1]
    exprs = " ".join(r["expr"] for r in rules)
    for row in table.splitlines():
        for name in set(re.findall(r"tailwire_[a-z0-9_<>]+", row)):
            for service in subjects.Service if "<service>" in name else (None,):
                wanted = name.replace("<service>", str(service)) if service else name
                assert wanted in exprs, f"no alert uses {wanted} ({row[:60]})"


def test_the_pod_monitor_selects_every_tailwire_workload_on_its_metrics_port() -> None:
    (monitor,) = [o for o in render("../deploy/monitoring") if o["kind"] == "PodMonitor"]
    selector = monitor["spec"]["selector"]["matchLabels"]
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    workloads = [o for o in render("base") if o["kind"] in ("Deployment", "DaemonSet")]
    assert {w["metadata"]["name"] for w in workloads} >= {f"tailwire-{s}" for s in subjects.Service}
    for workload in workloads:
        pod = workload["spec"]["template"]
        assert selector.items() <= pod["metadata"]["labels"].items(), workload["metadata"]
        ports = {p["name"] for p in pod["spec"]["containers"][0]["ports"]}
        assert endpoint["port"] in ports, workload["metadata"]["name"]


def test_the_dashboard_has_a_row_per_service_and_the_pipeline() -> None:
    dashboard = json.loads((DEPLOY / "monitoring" / "dashboard.json").read_text())
    rows = [p["title"] for p in dashboard["panels"] if p["type"] == "row"]
    assert rows[0].startswith("pipeline")
    assert set(rows[1:]) == {str(s) for s in subjects.Service}
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
