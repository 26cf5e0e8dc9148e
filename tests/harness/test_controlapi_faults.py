"""Contract: runtime fault injection (429 + Retry-After, 5xx, fractions, latency) and the log."""

from __future__ import annotations

import time

import httpx
import pytest

from tailwire.testing import controlapi

from .controlapi_helpers import key_request, mint_token

KEYS = "/api/v2/tailnet/-/keys"


@pytest.fixture
async def headers(
    control_api: controlapi.FakeControlAPI, control_api_http: httpx.AsyncClient
) -> dict[str, str]:
    return await mint_token(control_api_http, control_api, scopes=["auth_keys"], tags=["tag:k8s"])


async def test_429_with_retry_after_then_success(
    control_api: controlapi.FakeControlAPI,
    control_api_http: httpx.AsyncClient,
    headers: dict[str, str],
) -> None:
    rule = control_api.faults.respond(
        status=429, retry_after=7, times=2, route="/api/v2/tailnet/*/keys", method="POST"
    )
    body = key_request(tags=["tag:k8s"])
    statuses = []
    for _ in range(3):
        response = await control_api_http.post(KEYS, headers=headers, json=body)
        statuses.append(response.status_code)
        if response.status_code == 429:
            assert response.headers["Retry-After"] == "7"
            assert "message" in response.json()
    assert statuses == [429, 429, 200]
    assert rule.hits == 2
    # Only the third attempt reached the handler: exactly one key exists.
    assert len(control_api.keys) == 1


async def test_rules_match_method_and_route(
    control_api: controlapi.FakeControlAPI,
    control_api_http: httpx.AsyncClient,
    headers: dict[str, str],
) -> None:
    control_api.faults.respond(status=503, route="/api/v2/tailnet/*/keys", method="POST")
    assert (await control_api_http.get(KEYS, headers=headers)).status_code == 200
    dns = await control_api_http.get("/api/v2/tailnet/-/dns/split-dns", headers=headers)
    assert dns.status_code == 403  # served normally (the token lacks dns), not injected
    post = await control_api_http.post(KEYS, headers=headers, json=key_request(tags=["tag:k8s"]))
    assert post.status_code == 503


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_server_errors_come_before_authentication(
    control_api: controlapi.FakeControlAPI, control_api_http: httpx.AsyncClient, status: int
) -> None:
    control_api.faults.respond(status=status, times=None)
    token = await control_api_http.post("/api/v2/oauth/token", data={"client_id": "x"})
    assert token.status_code == status
    assert (await control_api_http.get(KEYS)).status_code == status
    control_api.faults.clear()
    assert (await control_api_http.get(KEYS)).status_code == 401


async def test_fraction_is_reproducible_with_a_seed() -> None:
    async def statuses(seed: int) -> list[int]:
        async with (
            controlapi.serve(clock=controlapi.FakeClock(), seed=seed) as fake,
            httpx.AsyncClient(base_url=fake.url) as http,
        ):
            fake.faults.respond(status=503, fraction=0.5, times=None, route="/")
            return [(await http.get("/")).status_code for _ in range(20)]

    first, again = await statuses(7), await statuses(7)
    assert first == again
    assert set(first) == {200, 503}


async def test_latency_trips_a_client_timeout(
    control_api: controlapi.FakeControlAPI, control_api_http: httpx.AsyncClient
) -> None:
    control_api.faults.delay(seconds=0.3, route="/")
    with pytest.raises(httpx.ReadTimeout):
        await control_api_http.get("/", timeout=0.05)
    started = time.monotonic()
    assert (await control_api_http.get("/")).status_code == 200
    assert time.monotonic() - started >= 0.3


async def test_request_log_records_outcomes_without_secrets(
    control_api: controlapi.FakeControlAPI,
    control_api_http: httpx.AsyncClient,
    headers: dict[str, str],
) -> None:
    control_api.requests.clear()
    control_api.faults.respond(status=429, retry_after=1, route=KEYS, method="GET")
    await control_api_http.get(KEYS, headers=headers)
    await control_api_http.get(KEYS, headers=headers, params={"fields": "all", "key": "s3cret"})
    records = control_api.requests.matching(method="GET", route=KEYS)
    assert [(r.status, r.injected) for r in records] == [(429, True), (200, False)]
    assert records[1].query == (("fields", "all"),)
    assert "s3cret" not in repr(list(control_api.requests))
