"""Settings: each bad value is refused with the field named; the TSIG secret never prints."""

from __future__ import annotations

from pathlib import Path

import pydantic
import pytest

from tailwire.services.dnsupdater import config
from tailwire.shared import errors


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"zones": [{"zone": "a..b"}], "tsig_key_name": "k"}, "zone"),
        ({"zones": [{"zone": "example.com", "backends": ["bind"]}]}, "backends"),
        ({"zones": [{"zone": "example.com"}]}, "tsig_key_name"),
        ({"zones": [{"zone": "example.com", "backends": ["tailscale"]}]}, "nameservers"),
        (
            {"zones": [{"zone": "x.com", "backends": ["coredns"]}] * 2},
            "configured twice",
        ),
        ({"coredns_configmap": "kube-system/coredns"}, "gateway_internal_service"),
        (
            {"coredns_configmap": "coredns", "gateway_internal_service": "envoy-gateway/gw"},
            "coredns_configmap",
        ),
        ({"annotation_prefix": "external-dns.kubernetes.io"}, "annotation_prefix"),
        ({"zones": [{"zone": "example.com", "ttl": 0}], "tsig_key_name": "k"}, "ttl"),
    ],
)
def test_bad_settings_name_the_field(values: dict[str, object], field: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=field):
        config.DnsUpdaterSettings.model_validate(values)


def test_zones_come_from_json_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "TAILWIRE_DNS_ZONES",
        '[{"zone": "Example.COM.", "backends": ["coredns", "rfc2136"], "server": "ns1"}]',
    )
    monkeypatch.setenv("TAILWIRE_DNS_TSIG_KEY_NAME", "tailwire")
    monkeypatch.setenv("TAILWIRE_DNS_SPLIT_HORIZON_HOSTNAMES", "docs.example.com, wiki.example.com")
    loaded = config.DnsUpdaterSettings()
    (zone,) = loaded.zones
    assert zone.zone == "example.com"
    assert zone.backends == (config.Backend.COREDNS, config.Backend.RFC2136)
    assert loaded.split_horizon_hostnames == ("docs.example.com", "wiki.example.com")
    assert not loaded.idle


def test_no_zone_means_idle() -> None:
    assert config.DnsUpdaterSettings().idle


def test_tsig_secret_from_file_and_never_in_repr(tmp_path: Path) -> None:
    secret = "c2VjcmV0LXRzaWcta2V5LW1hdGVyaWFsLTEyMzQ1Njc4"
    path = tmp_path / "tsig"
    path.write_text(secret + "\n")
    from_file = config.DnsUpdaterSettings(tsig_secret_file=path)
    assert from_file.tsig_secret_value() == secret
    from_env = config.DnsUpdaterSettings.model_validate({"tsig_secret": secret})
    assert secret not in repr(from_env)
    assert secret not in str(from_env.model_dump())
    with pytest.raises(errors.ConfigurationError, match="tsig_secret_file"):
        config.DnsUpdaterSettings(tsig_secret_file=tmp_path / "missing").tsig_secret_value()
    with pytest.raises(errors.ConfigurationError, match="TAILWIRE_DNS_TSIG_SECRET"):
        config.DnsUpdaterSettings().tsig_secret_value()
