"""One simulated Headscale server (0.28 API): API keys, users, pre-auth keys and nodes.

Follows Headscale's REST gateway: users and keys are addressed by numeric id, a pre-auth key
may be tags-only (no user), `expire` takes the key id (the pre-0.28 `{user, key}` form is also
accepted), listings show only the key prefix (`hskey-auth-<prefix>-***`) because Headscale
stores secrets hashed. `register_node` stands in for a tailscaled joining with a key. This
module keeps only digests of secrets and knows nothing about HTTP.
"""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import random
import string

from . import clock as clocks
from . import credentials
from .errors import ApiError, RegistrationError

AUTHKEY_PREFIX = "hskey-auth-"
APIKEY_PREFIX = "hskey-api-"
TAGGED_DEVICES = "tagged-devices"
DEFAULT_EXPIRY = datetime.timedelta(hours=1)
_PREFIX_ALPHABET = string.ascii_letters + string.digits


@dataclasses.dataclass(frozen=True, kw_only=True)
class User:
    id: int
    name: str
    created_at: datetime.datetime


@dataclasses.dataclass(kw_only=True)
class PreAuthKey:
    id: int
    prefix: str
    secret_digest: str = dataclasses.field(repr=False)
    user: User | None
    reusable: bool
    ephemeral: bool
    expiration: datetime.datetime
    created_at: datetime.datetime
    acl_tags: tuple[str, ...]
    used: bool = False

    @property
    def masked(self) -> str:
        return f"{AUTHKEY_PREFIX}{self.prefix}-***"


@dataclasses.dataclass(kw_only=True)
class Node:
    id: int
    hostname: str
    given_name: str
    user: User
    ip_addresses: tuple[str, str]
    pre_auth_key: PreAuthKey
    created_at: datetime.datetime
    last_seen: datetime.datetime
    tags: tuple[str, ...]


class Headscale:
    """The whole state of one Headscale control server."""

    def __init__(self, *, clock: clocks.Clock, rng: random.Random) -> None:
        self._clock = clock
        self._rng = rng
        self._api_keys: dict[str, str] = {}  # prefix -> digest
        self.users: dict[int, User] = {}
        self.keys: dict[int, PreAuthKey] = {}
        self.nodes: dict[int, Node] = {}
        self._next_key = 1
        self._next_node = 1

    # --- API keys and users ---------------------------------------------------------------

    def add_api_key(self) -> str:
        prefix = self._prefix()
        secret = f"{APIKEY_PREFIX}{prefix}-{credentials.new_secret(64)}"
        self._api_keys[prefix] = credentials.digest(secret)
        return secret

    def authenticate(self, presented: str) -> None:
        prefix, _, _ = presented.removeprefix(APIKEY_PREFIX).partition("-")
        stored = self._api_keys.get(prefix)
        if stored is None or not credentials.matches(presented, stored_digest=stored):
            raise ApiError(status=401, message="Unauthorized")

    def add_user(self, name: str) -> User:
        for user in self.users.values():
            if user.name == name:
                raise ApiError(status=409, message=f"user {name!r} already exists")
        user = User(id=len(self.users) + 1, name=name, created_at=self._clock.now())
        self.users[user.id] = user
        return user

    def user_by_id(self, user_id: int) -> User:
        user = self.users.get(user_id)
        if user is None:
            raise ApiError(status=404, message="user not found")
        return user

    # --- pre-auth keys --------------------------------------------------------------------

    def create_key(
        self,
        *,
        user_id: int | None,
        reusable: bool,
        ephemeral: bool,
        expiration: datetime.datetime | None,
        acl_tags: list[str],
    ) -> tuple[PreAuthKey, str]:
        """Mint a key for a user, or a tags-only key; returns it and its plaintext (once)."""
        for tag in acl_tags:
            if not tag.startswith("tag:"):
                raise ApiError(status=400, message=f"tag {tag!r} must start with 'tag:'")
        if user_id is None and not acl_tags:
            raise ApiError(status=400, message="a pre-auth key needs a user or at least one tag")
        user = self.user_by_id(user_id) if user_id is not None else None
        now = self._clock.now()
        prefix = self._prefix()
        secret = f"{AUTHKEY_PREFIX}{prefix}-{credentials.new_secret(64)}"
        key = PreAuthKey(
            id=self._next_key,
            prefix=prefix,
            secret_digest=credentials.digest(secret),
            user=user,
            reusable=reusable,
            ephemeral=ephemeral,
            expiration=expiration or now + DEFAULT_EXPIRY,
            created_at=now,
            acl_tags=tuple(dict.fromkeys(acl_tags)),
        )
        self._next_key += 1
        self.keys[key.id] = key
        return key, secret

    def list_keys(self, *, user_id: int | None) -> list[PreAuthKey]:
        keys = self.keys.values()
        return [k for k in keys if user_id is None or (k.user and k.user.id == user_id)]

    def get_key(self, key_id: int) -> PreAuthKey:
        key = self.keys.get(key_id)
        if key is None:
            raise ApiError(status=404, message="pre-auth key not found")
        return key

    def find_key(self, *, user_id: int, secret: str) -> PreAuthKey:
        """The pre-0.28 addressing: a user and the full key."""
        for key in self.keys.values():
            owned = key.user is not None and key.user.id == user_id
            if owned and credentials.matches(secret, stored_digest=key.secret_digest):
                return key
        raise ApiError(status=404, message="pre-auth key not found")

    def expire_key(self, key: PreAuthKey) -> None:
        key.expiration = min(key.expiration, self._clock.now())

    def delete_key(self, key_id: int) -> None:
        key = self.get_key(key_id)
        if any(n.pre_auth_key is key for n in self.nodes.values()):
            # Headscale keeps a key a node was registered with (it needs its tags): expire only.
            raise ApiError(status=400, message="pre-auth key is in use by a node; expire it")
        del self.keys[key_id]

    # --- nodes ----------------------------------------------------------------------------

    def register_node(self, *, authkey: str, hostname: str) -> Node:
        """A tailscaled joins with `authkey` (`tailscale up --login-server ... --auth-key`)."""
        key = self._key_for(authkey)
        now = self._clock.now()
        if now >= key.expiration:
            raise RegistrationError(f"pre-auth key {key.id} has expired")
        if key.used and not key.reusable:
            raise RegistrationError(f"pre-auth key {key.id} was already used")
        key.used = True
        owner = key.user if not key.acl_tags and key.user else self._tagged_devices()
        number = self._next_node
        self._next_node += 1
        node = Node(
            id=number,
            hostname=hostname,
            given_name=self._unique_name(hostname),
            user=owner,
            ip_addresses=(
                str(ipaddress.IPv4Address("100.64.0.0") + number),
                str(ipaddress.IPv6Address("fd7a:115c:a1e0::") + number),
            ),
            pre_auth_key=key,
            created_at=now,
            last_seen=now,
            tags=key.acl_tags,
        )
        self.nodes[node.id] = node
        return node

    def _key_for(self, authkey: str) -> PreAuthKey:
        prefix, _, _ = authkey.removeprefix(AUTHKEY_PREFIX).partition("-")
        for key in self.keys.values():
            if key.prefix == prefix and credentials.matches(
                authkey, stored_digest=key.secret_digest
            ):
                return key
        raise RegistrationError("invalid pre-auth key")

    def _tagged_devices(self) -> User:
        # Since 0.28 tagged nodes belong to a special user rather than to the key's user.
        for user in self.users.values():
            if user.name == TAGGED_DEVICES:
                return user
        return self.add_user(TAGGED_DEVICES)

    def _unique_name(self, hostname: str) -> str:
        taken = {n.given_name for n in self.nodes.values()}
        candidate, n = hostname.lower(), 0
        while candidate in taken:
            n += 1
            candidate = f"{hostname.lower()}-{n}"
        return candidate

    def get_node(self, node_id: int) -> Node:
        node = self.nodes.get(node_id)
        if node is None:
            raise ApiError(status=404, message="node not found")
        return node

    def delete_node(self, node_id: int) -> None:
        del self.nodes[self.get_node(node_id).id]

    def _prefix(self) -> str:
        return "".join(self._rng.choices(_PREFIX_ALPHABET, k=12))
