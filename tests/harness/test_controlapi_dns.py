"""Contract: split-DNS settings (GET, PATCH merge with null deletes, PUT replace)."""

from __future__ import annotations

import httpx
import pytest

from tailwire.testing import controlapi

from .controlapi_helpers import mint_token

SPLIT_DNS = "/api/v2/tailnet/-/dns/split-dns"


@pytest.fixture
async def headers(
    control_api: controlapi.FakeControlAPI, control_api_http: httpx.AsyncClient
) -> dict[str, str]:
    return await mint_token(control_api_http, control_api, scopes=["dns"])


async def test_empty_by_default(
    control_api_http: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    response = await control_api_http.get(SPLIT_DNS, headers=headers)
    assert response.status_code == 200
    assert response.json() == {}


async def test_patch_merges_and_null_deletes(
    control_api: controlapi.FakeControlAPI,
    control_api_http: httpx.AsyncClient,
    headers: dict[str, str],
) -> None:
    first = await control_api_http.patch(
        SPLIT_DNS,
        headers=headers,
        json={"example.com": ["100.100.1.1"], "other.com": ["2.2.2.2"]},
    )
    assert first.json() == {"example.com": ["100.100.1.1"], "other.com": ["2.2.2.2"]}

    second = await control_api_http.patch(
        SPLIT_DNS, headers=headers, json={"example.com": ["100.100.1.2", "fd7a:115c:a1e0::53"]}
    )
    assert second.json() == {
        "example.com": ["100.100.1.2", "fd7a:115c:a1e0::53"],
        "other.com": ["2.2.2.2"],
    }

    third = await control_api_http.patch(SPLIT_DNS, headers=headers, json={"other.com": None})
    assert third.json() == {"example.com": ["100.100.1.2", "fd7a:115c:a1e0::53"]}
    assert control_api.split_dns == third.json()
    assert (await control_api_http.get(SPLIT_DNS, headers=headers)).json() == third.json()


async def test_put_replaces_and_empty_object_clears(
    control_api_http: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    await control_api_http.patch(SPLIT_DNS, headers=headers, json={"old.com": ["1.1.1.1"]})
    replaced = await control_api_http.put(
        SPLIT_DNS, headers=headers, json={"example.com": ["1.2.3.4"], "gone.com": None}
    )
    assert replaced.json() == {"example.com": ["1.2.3.4"]}
    cleared = await control_api_http.put(SPLIT_DNS, headers=headers, json={})
    assert cleared.json() == {}


@pytest.mark.parametrize(
    "body",
    [{"example.com": ["not-an-ip"]}, {"example.com": "1.1.1.1"}, ["example.com"]],
)
async def test_invalid_settings_are_400(
    control_api_http: httpx.AsyncClient, headers: dict[str, str], body: object
) -> None:
    response = await control_api_http.patch(SPLIT_DNS, headers=headers, json=body)
    assert response.status_code == 400
    assert "message" in response.json()
