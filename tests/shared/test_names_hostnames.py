"""Tailnet hostnames of gateways: the cluster's name in them when it has one, DNS-valid and
stable whatever the length; settings refuse a cluster name that would not fit."""

from __future__ import annotations

import pydantic
import pytest

from tailwire.shared import settings
from tailwire.shared.k8s import names


def test_hostnames_carry_the_cluster_name_when_there_is_one() -> None:
    assert names.hostname_prefix("payments") == "tailwire-payments"
    assert names.hostname_prefix("payments", cluster="eu1") == "tailwire-eu1-payments"
    assert (
        names.gateway_hostname(group="payments", node="ip-10-0-0-1.ec2.internal", cluster="eu1")
        == "tailwire-eu1-payments-ip-10-0-0-1"
    )


def test_long_names_stay_within_the_hostname_limit_and_stable() -> None:
    group = "a-very-long-egress-group-name-that-goes-on"
    hostname = names.gateway_hostname(group=group, node="n" * 63, cluster="c" * 20)
    assert len(hostname) <= 63
    assert hostname == names.gateway_hostname(group=group, node="n" * 63, cluster="c" * 20)
    assert len(names.hostname_prefix(group, cluster="c" * 20)) <= 40


@pytest.mark.parametrize("bad", ["Prod", "eu_1", "-eu", "eu-", "x" * 21, "eu.1"])
def test_cluster_names_that_are_not_short_dns_labels_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match=r"cluster_name: .* is not a lower-case DNS label"):
        settings.ClusterNetworkSettings(cluster_name=bad)


def test_a_bad_setting_is_described_by_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAILWIRE_CLUSTER_NAME", "Prod")
    with pytest.raises(pydantic.ValidationError) as caught:
        settings.ClusterNetworkSettings()
    assert settings.describe_error(caught.value).startswith("TAILWIRE_CLUSTER_NAME: 'Prod' is")
