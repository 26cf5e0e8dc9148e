"""Contract: creating, listing, reading and deleting tagged auth keys."""

from __future__ import annotations

import httpx
import pytest

from tailwire.testing import controlapi

from .controlapi_helpers import key_request, mint_token

KEYS = "/api/v2/tailnet/-/keys"


@pytest.fixture
async def headers(
    control_api: controlapi.FakeControlAPI, control_api_http: httpx.AsyncClient
) -> dict[str, str]:
    return await mint_token(
        control_api_http, control_api, scopes=["auth_keys"], tags=["tag:k8s", "tag:egress"]
    )


async def test_create_returns_the_key_once(
    control_api_http: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    response = await control_api_http.post(
        KEYS, headers=headers, json=key_request(tags=["tag:k8s"], preauthorized=True)
    )
    assert response.status_code == 200
    created = response.json()
    assert created["key"].startswith(f"tskey-auth-{created['id']}-")
    assert created["capabilities"]["devices"]["create"] == {
        "reusable": False,
        "ephemeral": False,
        "preauthorized": True,
        "tags": ["tag:k8s"],
    }
    assert created["description"] == "tailwire test"
    assert created["created"] == "2030-01-01T00:00:00Z"
    assert created["expires"] == "2030-01-01T01:00:00Z"

    read = await control_api_http.get(f"{KEYS}/{created['id']}", headers=headers)
    assert read.status_code == 200
    assert "key" not in read.json()
    assert read.json()["capabilities"] == created["capabilities"]


async def test_list_names_active_keys_without_secrets(
    control_api_http: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    ids = set()
    for _ in range(2):
        created = await control_api_http.post(
            KEYS, headers=headers, json=key_request(tags=["tag:k8s"], reusable=True)
        )
        ids.add(created.json()["id"])
    listed = (await control_api_http.get(KEYS, headers=headers)).json()["keys"]
    assert {k["id"] for k in listed} == ids
    assert all("key" not in k for k in listed)


async def test_delete_invalidates_the_key(
    control_api: controlapi.FakeControlAPI,
    control_api_http: httpx.AsyncClient,
    headers: dict[str, str],
) -> None:
    created = (
        await control_api_http.post(KEYS, headers=headers, json=key_request(tags=["tag:k8s"]))
    ).json()
    deleted = await control_api_http.delete(f"{KEYS}/{created['id']}", headers=headers)
    assert deleted.status_code == 200

    read = (await control_api_http.get(f"{KEYS}/{created['id']}", headers=headers)).json()
    assert read["invalid"] is True
    assert read["revoked"] == "2030-01-01T00:00:00Z"
    assert (await control_api_http.get(KEYS, headers=headers)).json() == {"keys": []}
    with pytest.raises(controlapi.RegistrationError, match="revoked"):
        control_api.register_device(authkey=created["key"], hostname="gw")


async def test_unknown_key_is_404(
    control_api_http: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    assert (await control_api_http.get(f"{KEYS}/kNopeCNTRL", headers=headers)).status_code == 404
    gone = await control_api_http.delete(f"{KEYS}/kNopeCNTRL", headers=headers)
    assert gone.status_code == 404


async def test_expired_key_reads_as_invalid(
    control_api: controlapi.FakeControlAPI,
    control_api_http: httpx.AsyncClient,
    headers: dict[str, str],
) -> None:
    created = (
        await control_api_http.post(KEYS, headers=headers, json=key_request(tags=["tag:k8s"]))
    ).json()
    assert isinstance(control_api.clock, controlapi.FakeClock)
    control_api.clock.advance(seconds=3600)
    # The token lived exactly as long as the key; mint a fresh one to look.
    fresh = await mint_token(control_api_http, control_api, scopes=["auth_keys"])
    read = (await control_api_http.get(f"{KEYS}/{created['id']}", headers=fresh)).json()
    assert read["invalid"] is True
    assert "capabilities" not in read


@pytest.mark.parametrize("tags", [["tag:other"], ["tag:k8s", "tag:other"], []])
async def test_tags_the_client_does_not_own_are_refused(
    control_api_http: httpx.AsyncClient, headers: dict[str, str], tags: list[str]
) -> None:
    # The real API answers 400 (not 403) for this; see tailscale/tailscale#8299.
    response = await control_api_http.post(KEYS, headers=headers, json=key_request(tags=tags))
    assert response.status_code == 400
    assert response.json() == {
        "message": f"requested tags [{' '.join(tags)}] are invalid or not permitted"
    }


async def test_tags_owned_by_the_clients_tags_are_allowed(
    control_api: controlapi.FakeControlAPI,
    control_api_http: httpx.AsyncClient,
    headers: dict[str, str],
) -> None:
    control_api.set_tag_owner(tag="tag:group-a", owners=["tag:k8s"])
    response = await control_api_http.post(
        KEYS, headers=headers, json=key_request(tags=["tag:group-a"])
    )
    assert response.status_code == 200


async def test_exact_tags_clients_refuse_a_subset(
    control_api: controlapi.FakeControlAPI, control_api_http: httpx.AsyncClient
) -> None:
    client = control_api.add_oauth_client(
        scopes=["auth_keys"], tags=["tag:a", "tag:b"], exact_tags=True
    )
    token = await control_api_http.post(
        "/api/v2/oauth/token",
        data={"client_id": client.client_id, "client_secret": client.client_secret},
    )
    headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
    subset = await control_api_http.post(KEYS, headers=headers, json=key_request(tags=["tag:a"]))
    assert subset.status_code == 400
    full = await control_api_http.post(
        KEYS, headers=headers, json=key_request(tags=["tag:a", "tag:b"])
    )
    assert full.status_code == 200


@pytest.mark.parametrize(
    ("description", "status"),
    [("x" * 50, 200), ("x" * 51, 400), ("tailwire egress-group_a 1", 200), ("no/slash", 400)],
)
async def test_description_rules(
    control_api_http: httpx.AsyncClient, headers: dict[str, str], description: str, status: int
) -> None:
    response = await control_api_http.post(
        KEYS, headers=headers, json=key_request(tags=["tag:k8s"], description=description)
    )
    assert response.status_code == status
    if status == 400:
        assert "description" in response.json()["message"]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"capabilities": {}},
        {"capabilities": {"devices": {"create": {"tags": "tag:k8s"}}}},
        {"capabilities": {"devices": {"create": {"tags": ["tag:k8s"], "reusable": "yes"}}}},
        {"capabilities": {"devices": {"create": {"tags": ["tag:k8s"]}}}, "expirySeconds": -1},
        {"capabilities": {"devices": {"create": {"tags": ["tag:k8s"]}}}, "expirySeconds": 10**8},
    ],
)
async def test_malformed_requests_are_400(
    control_api_http: httpx.AsyncClient, headers: dict[str, str], body: dict[str, object]
) -> None:
    response = await control_api_http.post(KEYS, headers=headers, json=body)
    assert response.status_code == 400
    assert "message" in response.json()


async def test_secrets_appear_only_in_the_create_response(
    control_api: controlapi.FakeControlAPI,
    control_api_http: httpx.AsyncClient,
    headers: dict[str, str],
) -> None:
    created = (
        await control_api_http.post(KEYS, headers=headers, json=key_request(tags=["tag:k8s"]))
    ).json()
    secret = created["key"].rsplit("-", 1)[1]
    token = headers["Authorization"].removeprefix("Bearer ")
    seen = [
        (await control_api_http.get(KEYS, headers=headers)).text,
        (await control_api_http.get(f"{KEYS}/{created['id']}", headers=headers)).text,
        repr(list(control_api.requests)),
        repr(control_api.keys),
    ]
    for text in seen:
        assert secret not in text
        assert token not in text
