"""Bus credentials for nodeagents: the answers to nats-server's auth callout.

A nodeagent connects with its projected ServiceAccount token as its NATS token. nats-server,
configured with `auth_callout` (`tailwire nats-config --auth-callout`), sends every
connection that is not a listed service user to `$SYS.REQ.USER.AUTH` as an authorization
request (a JWT). The keyminter has the token reviewed by the API server (TokenReview); a
token of the nodeagent's ServiceAccount that is bound to a pod on node N (Kubernetes 1.30+
puts the node name into such tokens) gets a user JWT with exactly
`permissions.for_node(N)`, signed by the issuer account key, that expires with the token
(`token_expiry`): nats-server ends the connection then, and the agent reconnects with the
token kubelet rotated in before that (`bus.TokenFile`). Anything
else gets a response that names why, and the server refuses the connection.

Only nats-server can publish on `$SYS.REQ.USER.AUTH` (no user's permissions allow it), so
the request's own signature is not checked here. Pure: no I/O; the clock is passed in.
JWT layout as nats-server reads it (ADR-26): header `{"typ":"JWT","alg":"ed25519-nkey"}`,
base64url without padding, ed25519 signature over `header.claims`.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import hashlib
import json
import os
from typing import Any

import nkeys

from tailwire.shared import errors, permissions

AUTH_SUBJECT = "$SYS.REQ.USER.AUTH"
GLOBAL_ACCOUNT = "$G"  # the account of a config without `accounts`
NODE_NAME_CLAIM = "authentication.kubernetes.io/node-name"
_HEADER = {"typ": "JWT", "alg": "ed25519-nkey"}


class Refused(errors.TailwireError):
    """A connection that gets no credentials; the message goes back to the server."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class AuthRequest:
    """What the server asks about one connection."""

    user_nkey: str
    server_id: str
    token: str | None
    client_name: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class Review:
    """What the API server said of a token (TokenReview status)."""

    authenticated: bool
    username: str = ""
    extra: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    error: str = ""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def parse_request(jwt: bytes) -> AuthRequest:
    """The fields of an authorization request; MessageRejected names what is missing."""
    try:
        _, claims_part, _ = jwt.decode().split(".")
        claims = json.loads(_unb64(claims_part))
        nats = claims["nats"]
        connect = nats.get("connect_opts") or {}
        return AuthRequest(
            user_nkey=str(nats["user_nkey"]),
            server_id=str(nats["server_id"]["id"]),
            token=connect.get("auth_token") or None,
            client_name=str((nats.get("client_info") or {}).get("name") or ""),
        )
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise errors.MessageRejected(f"auth callout request: not a request JWT ({exc})") from exc


def node_of(review: Review, *, service_account: str, namespace: str) -> str:
    """The node a reviewed token may act for; Refused says why not."""
    if not review.authenticated:
        raise Refused(f"token not accepted: {review.error or 'unauthenticated'}")
    expected = f"system:serviceaccount:{namespace}:{service_account}"
    if review.username != expected:
        raise Refused(f"{review.username or 'the token'} is not {expected}")
    nodes = review.extra.get(NODE_NAME_CLAIM) or ()
    if len(nodes) != 1 or not nodes[0]:
        raise Refused(
            "the token names no node: use a projected token bound to the nodeagent's pod "
            "(Kubernetes 1.30 or later)"
        )
    return nodes[0]


def issuer_from_seed(seed: str) -> nkeys.KeyPair:
    """The issuer key pair; ConfigurationError (without the seed) if it is not an account seed."""
    try:
        pair = nkeys.from_seed(seed.encode())
        public = pair.public_key.decode()
    except Exception:  # noqa: BLE001 (nkeys raises several unrelated types)
        raise errors.ConfigurationError("bus_auth_issuer_seed: not an nkey seed") from None
    if not public.startswith("A"):
        raise errors.ConfigurationError("bus_auth_issuer_seed: not an account seed (SA...)")
    return pair


def new_issuer() -> tuple[str, str]:
    """(seed, public key) of a fresh issuer account key pair."""
    seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_ACCOUNT).decode()
    return seed, issuer_from_seed(seed).public_key.decode()


def _encode(claims: dict[str, Any], issuer: nkeys.KeyPair) -> str:
    body = {**claims, "iss": issuer.public_key.decode()}
    body["jti"] = (
        base64.b32encode(hashlib.sha256(json.dumps(body, sort_keys=True).encode()).digest())
        .decode()
        .rstrip("=")
    )
    signing_input = (
        _b64(json.dumps(_HEADER, separators=(",", ":")).encode())
        + "."
        + _b64(json.dumps(body, separators=(",", ":")).encode())
    )
    return signing_input + "." + _b64(issuer.sign(signing_input.encode()))


def token_expiry(token: str) -> datetime.datetime | None:
    """When a ServiceAccount token expires: the `exp` claim of its JWT payload, or None if it
    has none (not a JWT). Read only after the API server accepted the token (TokenReview), so
    its signature is not checked again here."""
    try:
        _, claims_part, _ = token.split(".")
        exp = json.loads(_unb64(claims_part)).get("exp")
    except (ValueError, TypeError, UnicodeDecodeError, AttributeError):
        return None
    if not isinstance(exp, int | float) or isinstance(exp, bool):
        return None
    return datetime.datetime.fromtimestamp(exp, tz=datetime.UTC)


def user_jwt(
    request: AuthRequest,
    *,
    node: str,
    issuer: nkeys.KeyPair,
    now: datetime.datetime,
    expires: datetime.datetime | None = None,
) -> str:
    """The user JWT of a nodeagent confined to `node`, valid until `expires` (the token's own
    expiry): a grant never outlives the credential it was given for. nats-server ends the
    connection at that moment (`-ERR 'User Authentication Expired'`, which nats-py does not
    retry), so the agent reconnects with its rotated token before then (`bus.TokenFile`);
    kubelet rotates a projected token at 80 % of its life."""
    perms = permissions.for_node(node)
    claims: dict[str, Any] = {}
    if expires is not None:
        claims["exp"] = int(expires.timestamp())
    return _encode(
        {
            **claims,
            "sub": request.user_nkey,
            "aud": GLOBAL_ACCOUNT,
            "name": permissions.nodeagent_user(node),
            "iat": int(now.timestamp()),
            "nats": {
                "pub": {"allow": list(perms.publish)},
                "sub": {"allow": list(perms.subscribe)},
                "subs": -1,
                "data": -1,
                "payload": -1,
                "type": "user",
                "version": 2,
            },
        },
        issuer,
    )


def response(
    request: AuthRequest,
    *,
    issuer: nkeys.KeyPair,
    now: datetime.datetime,
    user: str | None = None,
    error: str | None = None,
) -> bytes:
    """The signed authorization response: the user JWT, or the reason for refusing."""
    nats: dict[str, Any] = {"type": "authorization_response", "version": 2}
    if user is not None:
        nats["jwt"] = user
    if error is not None:
        nats["error"] = error
    claims = {
        "sub": request.user_nkey,
        "aud": request.server_id,
        "iat": int(now.timestamp()),
        "nats": nats,
    }
    return _encode(claims, issuer).encode()
