"""The control API answers about 30% of calls with 429 (Retry-After) or 503, token endpoint
included (the first three calls fail for sure): every EgressGroup still ends with exactly one valid key, the one its Secret
holds, and no key is left behind by a retried attempt."""

from __future__ import annotations

import base64

import pytest

from tailwire.services.keyminter import domain
from tailwire.shared.k8s import names
from tailwire.testing import system
from tailwire.testing.controlapi import credentials

from . import helpers

GROUPS = tuple(f"keyed-{i}" for i in range(8))
FAST_RETRIES = {
    # Same logic, shorter waits: the backoff base and the rate limit are settings.
    "TAILWIRE_KEYMINTER_BACKOFF_BASE_SECONDS": "0.1",
    "TAILWIRE_KEYMINTER_BACKOFF_CAP_SECONDS": "2",
    "TAILWIRE_KEYMINTER_RETRY_ATTEMPTS": "8",
    "TAILWIRE_KEYMINTER_RATE_PER_SECOND": "50",
    "TAILWIRE_KEYMINTER_RATE_BURST": "50",
}


@pytest.mark.timeout(90)
async def test_thirty_percent_faults_still_give_every_group_exactly_one_key() -> None:
    async with helpers.whole_system(env=FAST_RETRIES, use_netns=False) as s:
        assert s.control is not None
        assert s.kube is not None
        # The fake's fault RNG is seeded, and its first draws all miss at these fractions:
        # the first three calls (the token's included) fail for sure, then about 30% do.
        s.control.faults.respond(status=503, times=2)
        s.control.faults.respond(status=429, times=1, retry_after=1)
        s.control.faults.respond(status=429, fraction=0.15, times=None, retry_after=1)
        s.control.faults.respond(status=503, fraction=0.18, times=None)
        for group in GROUPS:
            helpers.egress_group(s, group)

        def secrets() -> dict[str, str] | None:
            found = {}
            for group in GROUPS:
                secret = s.kube.get(  # type: ignore[union-attr]
                    "secrets", name=names.authkey_secret(group), namespace=system.GATEWAY_NAMESPACE
                )
                if secret is None or names.AUTHKEY_SECRET_KEY not in (secret.get("data") or {}):
                    return None
                found[group] = base64.b64decode(secret["data"][names.AUTHKEY_SECRET_KEY]).decode()
            return found

        stored = await system.eventually(secrets, within=60, interval=0.2, what="all Secrets")
        faulted = sum(1 for r in s.control.requests if r.status in (429, 503))
        s.control.faults.clear()
        assert faulted >= 3, f"only {faulted} faults were injected"

        now = s.control.clock.now()
        for group in GROUPS:
            eg = s.kube.get("egressgroups", name=group)
            assert eg is not None
            marker = domain.key_marker(eg["metadata"]["uid"])
            valid = [k for k in s.control.keys.values() if k.description == marker]
            valid = [k for k in valid if not k.invalid(now)]
            assert len(valid) == 1, f"{group}: {len(valid)} valid keys"
            assert valid[0].secret_digest == credentials.digest(stored[group]), (
                f"{group}: the Secret holds another key"
            )
