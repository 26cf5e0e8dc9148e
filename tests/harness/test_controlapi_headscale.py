"""Contract: the Headscale flavour (pre-auth keys, nodes) served by the same fake."""

from __future__ import annotations

import httpx
import pytest

from tailwire.testing import controlapi

PREAUTHKEY = "/api/v1/preauthkey"


@pytest.fixture
def headers(control_api: controlapi.FakeControlAPI) -> dict[str, str]:
    return {"Authorization": f"Bearer {control_api.add_headscale_api_key()}"}


@pytest.fixture
def user_id(control_api: controlapi.FakeControlAPI) -> str:
    return str(control_api.add_headscale_user(name="tailwire").id)


async def create_key(
    http: httpx.AsyncClient, headers: dict[str, str], **body: object
) -> dict[str, object]:
    response = await http.post(PREAUTHKEY, headers=headers, json=body)
    assert response.status_code == 200, response.text
    key: dict[str, object] = response.json()["preAuthKey"]
    return key


async def test_create_returns_the_documented_shape(
    control_api_http: httpx.AsyncClient, headers: dict[str, str], user_id: str
) -> None:
    key = await create_key(
        control_api_http,
        headers,
        user=user_id,
        reusable=True,
        ephemeral=False,
        expiration="2030-01-02T00:00:00Z",
        aclTags=["tag:k8s"],
    )
    assert str(key["key"]).startswith("hskey-auth-")
    user = key["user"]
    assert isinstance(user, dict)
    assert (user["id"], user["name"]) == (user_id, "tailwire")
    assert {k: key[k] for k in ("id", "reusable", "ephemeral", "used", "aclTags")} == {
        "id": "1",
        "reusable": True,
        "ephemeral": False,
        "used": False,
        "aclTags": ["tag:k8s"],
    }
    assert key["expiration"] == "2030-01-02T00:00:00Z"
    assert key["createdAt"] == "2030-01-01T00:00:00Z"


async def test_tags_only_keys_need_no_user(
    control_api_http: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    key = await create_key(control_api_http, headers, aclTags=["tag:k8s"])
    assert key["user"] is None
    neither = await control_api_http.post(PREAUTHKEY, headers=headers, json={})
    assert neither.status_code == 400
    assert neither.json()["code"] == 3


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"user": "999"}, 404),
        ({"user": "tailwire"}, 400),
        ({"aclTags": ["k8s"]}, 400),
        ({"aclTags": ["tag:k8s"], "expiration": "tomorrow"}, 400),
    ],
)
async def test_invalid_requests_get_a_grpc_status(
    control_api_http: httpx.AsyncClient,
    headers: dict[str, str],
    body: dict[str, object],
    status: int,
) -> None:
    response = await control_api_http.post(PREAUTHKEY, headers=headers, json=body)
    assert response.status_code == status
    assert set(response.json()) == {"code", "message", "details"}


async def test_list_masks_the_secret_and_filters_by_user(
    control_api_http: httpx.AsyncClient, headers: dict[str, str], user_id: str
) -> None:
    created = await create_key(control_api_http, headers, user=user_id)
    await create_key(control_api_http, headers, aclTags=["tag:k8s"])
    everything = (await control_api_http.get(PREAUTHKEY, headers=headers)).json()["preAuthKeys"]
    assert len(everything) == 2
    assert all(str(k["key"]).endswith("-***") for k in everything)
    assert str(created["key"]) not in str(everything)
    mine = await control_api_http.get(PREAUTHKEY, headers=headers, params={"user": user_id})
    assert [k["id"] for k in mine.json()["preAuthKeys"]] == [created["id"]]


async def test_expire_by_id_and_the_legacy_way(
    control_api: controlapi.FakeControlAPI,
    control_api_http: httpx.AsyncClient,
    headers: dict[str, str],
    user_id: str,
) -> None:
    by_id = await create_key(control_api_http, headers, user=user_id)
    legacy = await create_key(control_api_http, headers, user=user_id)
    expire = f"{PREAUTHKEY}/expire"
    first = await control_api_http.post(expire, headers=headers, json={"id": by_id["id"]})
    assert (first.status_code, first.json()) == (200, {})
    second = await control_api_http.post(
        expire, headers=headers, json={"user": user_id, "key": legacy["key"]}
    )
    assert second.status_code == 200
    for key in (by_id, legacy):
        with pytest.raises(controlapi.RegistrationError, match="expired"):
            control_api.register_node(authkey=str(key["key"]), hostname="gw")
    unknown = await control_api_http.post(expire, headers=headers, json={"id": "42"})
    assert unknown.status_code == 404


async def test_nodes_join_list_and_delete(
    control_api: controlapi.FakeControlAPI,
    control_api_http: httpx.AsyncClient,
    headers: dict[str, str],
) -> None:
    key = await create_key(control_api_http, headers, aclTags=["tag:k8s"], reusable=True)
    node = control_api.register_node(authkey=str(key["key"]), hostname="eg-web-node-1")

    listed = (await control_api_http.get("/api/v1/node", headers=headers)).json()["nodes"]
    assert [n["id"] for n in listed] == [str(node.id)]
    body = listed[0]
    assert body["ipAddresses"] == ["100.64.0.1", "fd7a:115c:a1e0::1"]
    assert body["forcedTags"] == ["tag:k8s"]
    assert body["user"]["name"] == "tagged-devices"
    assert body["preAuthKey"]["used"] is True
    assert body["givenName"] == "eg-web-node-1"

    one = await control_api_http.get(f"/api/v1/node/{node.id}", headers=headers)
    assert one.json()["node"]["id"] == str(node.id)
    deleted = await control_api_http.delete(f"/api/v1/node/{node.id}", headers=headers)
    assert (deleted.status_code, deleted.json()) == (200, {})
    assert (await control_api_http.get("/api/v1/node", headers=headers)).json() == {"nodes": []}
    missing = await control_api_http.delete(f"/api/v1/node/{node.id}", headers=headers)
    assert missing.status_code == 404
    assert missing.json()["code"] == 5


async def test_one_off_key_is_used_up_and_delete_needs_it_unused(
    control_api: controlapi.FakeControlAPI,
    control_api_http: httpx.AsyncClient,
    headers: dict[str, str],
) -> None:
    key = await create_key(control_api_http, headers, aclTags=["tag:k8s"])
    control_api.register_node(authkey=str(key["key"]), hostname="a")
    with pytest.raises(controlapi.RegistrationError, match="already used"):
        control_api.register_node(authkey=str(key["key"]), hostname="b")
    in_use = await control_api_http.delete(
        PREAUTHKEY, headers=headers, params={"id": str(key["id"])}
    )
    assert in_use.status_code == 400

    spare = await create_key(control_api_http, headers, aclTags=["tag:k8s"])
    gone = await control_api_http.delete(
        PREAUTHKEY, headers=headers, params={"id": str(spare["id"])}
    )
    assert (gone.status_code, gone.json()) == (200, {})


@pytest.mark.parametrize("authorization", [None, "Bearer hskey-api-nope-nope", "Basic eDp5"])
async def test_api_key_is_required(
    control_api_http: httpx.AsyncClient, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = await control_api_http.get("/api/v1/node", headers=headers)
    assert response.status_code == 401
    assert response.text == "Unauthorized"
