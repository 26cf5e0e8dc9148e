"""A TailscaleTailnet's status across the processes: the watcher mirrors it, the keyminter
checks its control API with its Secret's credentials (here the local stand-in), the renderer
writes what it found, all through the NATS users and permissions of the deployment."""

from __future__ import annotations

import base64
from typing import Any

from tailwire.testing import system

NS = system.GATEWAY_NAMESPACE


def _secret(name: str, data: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": NS,
            # the TailscaleTailnet <prefix> of Secret <prefix>-oauth may use it
            "annotations": {"tailwire.dev/tailnets": name.removesuffix("-oauth")},
        },
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }


def _tailnet(name: str, *, api_url: str) -> dict[str, Any]:
    return {
        "apiVersion": "gateway.tailscale.com/v1alpha1",
        "kind": "TailscaleTailnet",
        "metadata": {"name": name},
        "spec": {"tailnet": "-", "apiURL": api_url, "oauthSecretName": f"{name}-oauth"},
    }


async def test_tailnet_status_says_whether_its_credentials_work() -> None:
    async with system.running(system.Options(nodes=())) as s:
        assert s.kube is not None
        assert s.control is not None
        oauth = s.control.add_oauth_client(scopes=["auth_keys", "devices:core"], tags=["tag:k8s"])
        s.apply(
            _secret(
                "lab-oauth", {"client_id": oauth.client_id, "client_secret": oauth.client_secret}
            )
        )
        s.apply(_secret("stale-oauth", {"client_id": oauth.client_id, "client_secret": "revoked"}))
        s.apply(_tailnet("lab", api_url=s.control.url))
        s.apply(_tailnet("stale", api_url=s.control.url))
        kube = s.kube

        def ready(name: str) -> dict[str, Any] | None:
            found = kube.get("tailscaletailnets", name=name)
            conditions = ((found or {}).get("status") or {}).get("conditions") or []
            return next((c for c in conditions if c["type"] == "Ready"), None)

        def settled(name: str) -> dict[str, Any] | None:
            condition = ready(name)
            return condition if condition and condition["status"] != "Unknown" else None

        lab = await system.eventually(lambda: settled("lab"), within=30, what="lab checked")
        stale = await system.eventually(lambda: settled("stale"), within=30, what="stale checked")
        lab_status = kube.get("tailscaletailnets", name="lab")

    assert (lab["status"], lab["reason"]) == ("True", "Connected")
    assert lab_status is not None
    assert lab_status["status"]["lastConnected"].endswith("Z")
    assert (stale["status"], stale["reason"]) == ("False", "AuthenticationFailed")
    assert "revoked" not in stale["message"]
    assert all(code == 0 for code in s.exit_codes.values()), s.unclean_logs
