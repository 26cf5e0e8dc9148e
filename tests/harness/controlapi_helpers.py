"""Small helpers shared by the control-API contract tests (token minting, auth headers)."""

from __future__ import annotations

import httpx

from tailwire.testing import controlapi


async def mint_token(
    http: httpx.AsyncClient,
    fake: controlapi.FakeControlAPI,
    *,
    scopes: list[str],
    tags: list[str] | None = None,
) -> dict[str, str]:
    """Register a client, exchange its credentials, return the bearer header."""
    client = fake.add_oauth_client(scopes=scopes, tags=tags or [])
    response = await http.post(
        "/api/v2/oauth/token",
        data={
            "client_id": client.client_id,
            "client_secret": client.client_secret,
            "grant_type": "client_credentials",
        },
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def key_request(
    *,
    tags: list[str],
    description: str = "tailwire test",
    reusable: bool = False,
    ephemeral: bool = False,
    preauthorized: bool = False,
) -> dict[str, object]:
    """The documented body of `POST /api/v2/tailnet/{tailnet}/keys`."""
    create = {
        "reusable": reusable,
        "ephemeral": ephemeral,
        "preauthorized": preauthorized,
        "tags": tags,
    }
    return {
        "capabilities": {"devices": {"create": create}},
        "expirySeconds": 3600,
        "description": description,
    }
