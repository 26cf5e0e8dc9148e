"""Issue 18, finding 6: a TailscaleTailnet's apiURL receives the credentials, so it must be
https://; plain http:// only to loopback (tests, a port-forward)."""

from __future__ import annotations

import pytest

from tailwire.shared.resources import loading


def problems(api_url: str) -> list[str]:
    checked = loading.validate_object(
        {
            "apiVersion": "gateway.tailscale.com/v1alpha1",
            "kind": "TailscaleTailnet",
            "metadata": {"name": "lab"},
            "spec": {"apiURL": api_url, "oauthSecretName": "lab-oauth"},
        }
    )
    return [f"{p.field}: {p.message}" for p in checked.problems]


@pytest.mark.parametrize(
    "url",
    ["https://api.tailscale.com", "https://headscale.example.com:8443", "http://127.0.0.1:8080",
     "http://localhost:8080", "http://[::1]:8080"],
)  # fmt: skip
def test_https_and_loopback_http_are_accepted(url: str) -> None:
    assert problems(url) == []


@pytest.mark.parametrize(
    "url", ["http://headscale.headscale.svc:8080", "http://10.0.0.5", "http://evil.example.com"]
)
def test_plain_http_elsewhere_is_refused_by_field(url: str) -> None:
    assert problems(url) == [
        "spec.apiURL: must be https:// (the credentials travel to it); plain http:// only to a "
        "loopback address"
    ]
