"""The end-to-end run leaks no secret: with every service as its own process on the secured
bus, a group is created, its key minted, a pod stitched; then the authkey (read from its
Secret), the OAuth client secret, the access token's prefix and the NATS passwords appear
nowhere on `tailwire.>` (subjects, headers, bodies), in no process's log, in no span."""

from __future__ import annotations

import base64

import pytest

from tailwire.shared.k8s import names
from tailwire.testing import system
from tests.failure import helpers

GROUP = "secrets"


@pytest.mark.timeout(90)
async def test_authkey_and_credentials_never_reach_the_bus_logs_or_spans() -> None:
    async with helpers.whole_system(log_level="DEBUG") as s, s.capture() as seen:
        assert s.kube is not None
        s.create_namespace(GROUP)
        helpers.egress_group(s, GROUP)
        pod = await helpers.member(s, group=GROUP, name="api-0")
        await helpers.converged(s, live={pod.uid: pod}, gone=set(), within=40)

        def stored_key() -> str | None:
            secret = s.kube.get(  # type: ignore[union-attr]
                "secrets", name=names.authkey_secret(GROUP), namespace=system.GATEWAY_NAMESPACE
            )
            data = (secret or {}).get("data") or {}
            raw = data.get(names.AUTHKEY_SECRET_KEY)
            return base64.b64decode(raw).decode() if raw else None

        authkey: str = await system.eventually(stored_key, within=30, what="the authkey Secret")
        await seen.wait_for("tailwire.v1.keys.ready.", within=10)
        logs = {name: p.log_path.read_text(errors="replace") for name, p in s.processes.items()}
        spans = [str(span) for span in s.otlp.spans]

    secrets = {
        "the authkey": authkey,
        "the authkey's secret part": authkey.rsplit("-", 1)[-1],
        "the OAuth client secret": s.processes["keyminter"].env[
            "TAILWIRE_TAILSCALE_OAUTH_CLIENT_SECRET"
        ],
        **{f"the NATS password of {user}": password for user, password in s.passwords.items()},
    }
    assert authkey.startswith("tskey-auth-")
    assert len(seen.messages) >= 10, "the run put little on the bus: nothing was checked"
    assert all(logs.values()), "a service wrote no log"
    for message in seen.messages:
        text = message.subject + repr(message.headers) + message.data.decode(errors="replace")
        for what, secret in secrets.items():
            assert secret not in text, f"{what} on the bus, in {message.subject}"
        assert "tskey-" not in text, f"a Tailscale key on the bus, in {message.subject}"
    for name, log in logs.items():
        for what, secret in secrets.items():
            assert secret not in log, f"{what} in the log of {name}"
        assert "tskey-auth-" not in log, f"an authkey in the log of {name}"
    for span in spans:
        for what, secret in secrets.items():
            assert secret not in span, f"{what} in a span"
