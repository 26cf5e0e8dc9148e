"""Issue 18 (low): a group's `spec.tailnet` becomes a directory on every node
(`gateway_state_dir`); `../` must never get there, from the spec or from a bus message."""

from __future__ import annotations

import pydantic
import pytest

from tailwire.shared import ids
from tailwire.shared.events import gateways
from tailwire.shared.resources import loading

HOSTILE = ["../../var/lib/kubelet", "a/b", "..", "UPPER", "x" * 254]


@pytest.mark.parametrize("tailnet", HOSTILE)
def test_an_egress_group_naming_no_tailnet_is_refused_by_field(tailnet: str) -> None:
    checked = loading.validate_object(
        {
            "apiVersion": "tailscale.rajsingh.info/v1alpha1",
            "kind": "EgressGroup",
            "metadata": {"name": "peers"},
            "spec": {"selector": {"podSelector": {}}, "tailnet": tailnet},
        }
    )
    assert [p.field for p in checked.problems] == ["spec.tailnet"]


@pytest.mark.parametrize("name", HOSTILE)
def test_a_gateway_config_with_a_path_for_a_name_does_not_validate(name: str) -> None:
    body = {"Version": "alpha0"}
    for field in ("tailnet", "group"):
        values = {"group": "peers", "tailnet": "prod", field: name}
        message = {"generation": 1, "config": body, "hash": gateways.config_hash(body), **values}
        with pytest.raises(pydantic.ValidationError):
            gateways.GatewayConfig.model_validate(message)
    ok = gateways.GatewayConfig(
        group=ids.GroupName("peers"), tailnet="prod.example", generation=1, config=body,
        hash=gateways.config_hash(body),
    )  # fmt: skip
    assert ok.tailnet == "prod.example"
