"""Gateway overrides per group (issue 17; the Tailscale operator's ProxyClass, for one group):
`spec.gateway` takes tolerations, resources, priorityClassName, labels, annotations and image
beside nodeSelector; each invalid value is refused naming its field, and the rendered
DaemonSet carries them (the real kube-apiserver accepting it is in
tests/realpeers/test_kubeapiserver_gateway_overrides.py). Unset, tailwire's defaults stay."""

from __future__ import annotations

from typing import Any

import pytest

from tailwire.services.renderer import app, view
from tailwire.services.renderer.egress import rendering
from tailwire.shared.resources import loading
from tests.renderer import helpers

OVERRIDES = {
    "nodeSelector": {"kubernetes.io/os": "linux"},
    "tolerations": [
        {"key": "dedicated", "operator": "Equal", "value": "egress", "effect": "NoSchedule"},
        {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
         "tolerationSeconds": 30},
    ],
    "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
    "priorityClassName": "system-node-critical",
    "labels": {"team": "payments"},
    "annotations": {"example.com/owner": "payments-oncall"},
    "image": "registry.example.com/tailscale:v1.102.5",
}  # fmt: skip


def _group(gateway: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "tailscale.rajsingh.info/v1alpha1",
        "kind": "EgressGroup",
        "metadata": {"name": "peers"},
        "spec": {**helpers.PEERS_SPEC, "gateway": gateway},
    }


def daemon_set(gateway: dict[str, Any]) -> dict[str, Any]:
    v = view.ClusterView()
    spec = {**helpers.PEERS_SPEC, "gateway": gateway}
    for obj in (helpers.group("peers", spec), helpers.pod("a", node_name="n1")):
        v.apply(obj)
    result = rendering.render_egress(view=v, opts=app.default_options())
    return next(m for m in result.manifests if m["kind"] == "DaemonSet")


def test_every_override_reaches_the_gateway_pods() -> None:
    pod = daemon_set(OVERRIDES)["spec"]["template"]
    spec = pod["spec"]
    assert spec["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert spec["tolerations"] == OVERRIDES["tolerations"]
    assert spec["priorityClassName"] == "system-node-critical"
    assert pod["metadata"]["labels"]["team"] == "payments"
    assert pod["metadata"]["annotations"] == {"example.com/owner": "payments-oncall"}
    (tailscaled,) = spec["containers"]
    assert tailscaled["resources"] == OVERRIDES["resources"]
    images = {c["image"] for c in [*spec["initContainers"], *spec["containers"]]}
    assert images == {"registry.example.com/tailscale:v1.102.5"}


def test_unset_the_defaults_stay() -> None:
    spec = daemon_set({})["spec"]["template"]["spec"]
    assert spec["tolerations"] == [{"operator": "Exists"}]
    assert "priorityClassName" not in spec
    assert "resources" not in spec["containers"][0]
    # An empty list is a choice too: no taint tolerated.
    assert daemon_set({"tolerations": []})["spec"]["template"]["spec"]["tolerations"] == []


@pytest.mark.parametrize(
    ("gateway", "field", "words"),
    [
        ({"resources": {"requests": {"cpu": "lots"}}}, "spec.gateway.resources.requests",
         "'lots' is not a quantity"),
        ({"resources": {"limits": {"gpu": "1"}}}, "spec.gateway.resources.limits",
         "'gpu' is not a resource"),
        ({"tolerations": [{"operator": "Exists", "value": "x"}]}, "spec.gateway.tolerations[0]",
         "operator Exists takes no value"),
        ({"tolerations": [{"value": "x"}]}, "spec.gateway.tolerations[0]",
         "operator Equal needs a key"),
        ({"tolerations": [{"key": "k", "effect": "Sometimes"}]},
         "spec.gateway.tolerations[0].effect", "NoSchedule"),
        ({"priorityClassName": "Not_A_Name"}, "spec.gateway.priorityClassName", "pattern"),
        ({"labels": {"egress.tailwire.dev/peers": "x"}}, "spec.gateway.labels",
         "tailwire's own labels cannot be overridden"),
        ({"labels": {"team": "a b"}}, "spec.gateway.labels", "is not a label value"),
        ({"annotations": {"bad key!": "x"}}, "spec.gateway.annotations",
         "is not a label or annotation key"),
        ({"image": "has space"}, "spec.gateway.image", "pattern"),
    ],
)  # fmt: skip
def test_an_invalid_override_is_refused_naming_its_field(
    gateway: dict[str, Any], field: str, words: str
) -> None:
    checked = loading.validate_object(_group(gateway))
    assert checked.resource is None
    lines = checked.lines()
    assert any(field in line and words in line for line in lines), lines
