"""OAuth clients, the access tokens they mint, and scope checks, as Tailscale's API v2 does them.

A client (`tskey-client-<id>-<secret>`) holds scopes and the tags it owns; the token endpoint
hands out `tskey-api-<id>-<secret>` bearer tokens that expire after a configurable lifetime
measured on the injected clock. Scope rules follow the public docs: a write scope implies its
`:read` form, `all`/`all:read` cover everything, the legacy `devices` scope covers auth keys and
devices. This module keeps only digests of secrets and knows nothing about HTTP.
"""

from __future__ import annotations

import dataclasses
import datetime
import random

from . import clock as clocks
from . import credentials
from .errors import ApiError

CLIENT_PREFIX = "tskey-client-"
TOKEN_PREFIX = "tskey-api-"  # noqa: S105 (a public prefix, not a credential)

# Legacy broad scopes and the granular scopes they stand for.
_LEGACY = {
    "devices": ("auth_keys", "devices:core", "devices:routes", "devices:posture_attributes"),
}

FORBIDDEN = "calling actor does not have enough permissions to perform this function"


@dataclasses.dataclass(frozen=True, kw_only=True)
class OAuthClient:
    """A registered client: what it may ask for, and the tags its keys may carry."""

    client_id: str
    secret_digest: str = dataclasses.field(repr=False)
    scopes: frozenset[str]
    tags: frozenset[str]
    # The docs say a key's tags "must exactly match" the client's (or be owned by them);
    # live tailnets have been seen to refuse a subset. Off by default: owned is enough.
    exact_tags: bool = False


@dataclasses.dataclass(frozen=True, kw_only=True)
class NewOAuthClient:
    """What `add_client` returns once: the id and the plaintext secret to log in with."""

    client_id: str
    client_secret: str = dataclasses.field(repr=False)


@dataclasses.dataclass(frozen=True, kw_only=True)
class AccessToken:
    """A minted bearer token (its secret only as a digest)."""

    token_id: str
    secret_digest: str = dataclasses.field(repr=False)
    client: OAuthClient
    scopes: frozenset[str]
    tags: frozenset[str]
    expires: datetime.datetime

    def grants(self, scope: str) -> bool:
        return grants(self.scopes, needed=scope)


def grants(held: frozenset[str], *, needed: str) -> bool:
    """Whether scopes `held` allow an operation that needs `needed` (e.g. `dns:read`)."""
    expanded = set(held)
    for legacy, granular in _LEGACY.items():
        if legacy in held:
            expanded.update(granular)
        if f"{legacy}:read" in held:
            expanded.update(f"{g}:read" for g in granular)
    if needed in expanded or "all" in expanded:
        return True
    if needed.endswith(":read"):
        return needed.removesuffix(":read") in expanded or "all:read" in expanded
    return False


class OAuthServer:
    """Registered clients and live tokens of one tailnet."""

    def __init__(
        self, *, clock: clocks.Clock, rng: random.Random, token_lifetime: datetime.timedelta
    ) -> None:
        self._clock = clock
        self._rng = rng
        self.token_lifetime = token_lifetime
        self._clients: dict[str, OAuthClient] = {}
        self._tokens: dict[str, AccessToken] = {}

    def add_client(
        self,
        *,
        scopes: list[str] | tuple[str, ...],
        tags: list[str] | tuple[str, ...] = (),
        client_id: str | None = None,
        exact_tags: bool = False,
    ) -> NewOAuthClient:
        """Register a client; the returned secret is the only copy."""
        client_id = client_id or credentials.new_id(self._rng, prefix="k")
        if "-" in client_id:
            raise ValueError("client ids cannot contain '-' (it separates the secret)")
        secret = f"{CLIENT_PREFIX}{client_id}-{credentials.new_secret()}"
        self._clients[client_id] = OAuthClient(
            client_id=client_id,
            secret_digest=credentials.digest(secret),
            scopes=frozenset(scopes),
            tags=frozenset(tags),
            exact_tags=exact_tags,
        )
        return NewOAuthClient(client_id=client_id, client_secret=secret)

    def mint_token(
        self,
        *,
        client_id: str,
        client_secret: str,
        scopes: list[str] | None,
        tags: list[str] | None,
    ) -> tuple[str, AccessToken]:
        """Exchange client credentials for a token, optionally narrowed to `scopes`/`tags`."""
        client = self._clients.get(client_id)
        if client is None or not credentials.matches(
            client_secret, stored_digest=client.secret_digest
        ):
            raise ApiError(status=401, message="invalid client credentials")
        wanted_scopes = frozenset(scopes) if scopes else client.scopes
        not_granted = sorted(s for s in wanted_scopes if not grants(client.scopes, needed=s))
        if not_granted:
            listed = " ".join(not_granted)
            raise ApiError(status=403, message=f'OAuth client cannot grant scopes "{listed}"')
        wanted_tags = frozenset(tags) if tags else client.tags
        if not wanted_tags <= client.tags:
            listed = " ".join(sorted(wanted_tags - client.tags))
            raise ApiError(status=403, message=f'OAuth client cannot grant tags "{listed}"')
        token_id = credentials.new_id(self._rng, prefix="t")
        secret = f"{TOKEN_PREFIX}{token_id}-{credentials.new_secret()}"
        token = AccessToken(
            token_id=token_id,
            secret_digest=credentials.digest(secret),
            client=client,
            scopes=wanted_scopes,
            tags=wanted_tags,
            expires=self._clock.now() + self.token_lifetime,
        )
        self._tokens[token_id] = token
        return secret, token

    def authenticate(self, presented: str) -> AccessToken:
        """The live token behind a bearer value; 401 when unknown, mangled or expired."""
        token_id, _, _ = presented.removeprefix(TOKEN_PREFIX).partition("-")
        token = self._tokens.get(token_id) if presented.startswith(TOKEN_PREFIX) else None
        if token is None or not credentials.matches(presented, stored_digest=token.secret_digest):
            raise ApiError(status=401, message="API token invalid")
        if self._clock.now() >= token.expires:
            raise ApiError(status=401, message="API token expired")
        return token

    def revoke_tokens(self) -> None:
        """Forget every token (as if the client had been rotated)."""
        self._tokens.clear()

    def require(self, token: AccessToken, *, scope: str) -> None:
        if not token.grants(scope):
            raise ApiError(status=403, message=FORBIDDEN)
