"""One simulated Tailscale tailnet: auth keys, devices and split-DNS settings.

It enforces the rules of the public API v2 that a client can trip over: an OAuth-owned key must
carry tags, every tag must be the client's or owned by one of its tags (`tagOwners`), a
description is at most 50 characters, a revoked/expired/used one-off key cannot register a
device. `register_device` stands in for a tailscaled joining with a key. It keeps only digests
of key secrets and knows nothing about HTTP; scope checks belong to the caller.
"""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import random
import re

from . import clock as clocks
from . import credentials
from .errors import ApiError, RegistrationError
from .oauth import AccessToken

AUTHKEY_PREFIX = "tskey-auth-"
DEFAULT_KEY_EXPIRY = datetime.timedelta(days=90)
MAX_KEY_EXPIRY = datetime.timedelta(days=90)
MAX_DESCRIPTION = 50
# Documented: alphanumerics, hyphens, underscores and spaces.
_DESCRIPTION = re.compile(r"[A-Za-z0-9 _-]*")
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_QUAD100 = ipaddress.ip_address("100.100.100.100")
# Tailscale's ULA prefix plus the fixed middle it uses; the low 32 bits mirror the IPv4.
_ULA_HEAD = "fd7a:115c:a1e0:ab12:4843:cd96"


@dataclasses.dataclass(kw_only=True)
class AuthKey:
    id: str
    secret_digest: str = dataclasses.field(repr=False)
    created: datetime.datetime
    expires: datetime.datetime
    reusable: bool
    ephemeral: bool
    preauthorized: bool
    tags: tuple[str, ...]
    description: str
    revoked: datetime.datetime | None = None
    uses: int = 0

    def invalid(self, now: datetime.datetime) -> bool:
        used_up = not self.reusable and self.uses > 0
        return self.revoked is not None or now >= self.expires or used_up


@dataclasses.dataclass(kw_only=True)
class Device:
    id: str
    node_id: str
    hostname: str
    name: str
    addresses: tuple[str, str]
    tags: tuple[str, ...]
    authorized: bool
    ephemeral: bool
    created: datetime.datetime
    last_seen: datetime.datetime
    os: str
    key_id: str
    advertised_routes: tuple[str, ...] = ()
    enabled_routes: tuple[str, ...] = ()


class Tailnet:
    """Keys, devices and DNS of the one tailnet the fake serves."""

    def __init__(
        self,
        *,
        name: str,
        clock: clocks.Clock,
        rng: random.Random,
        magicdns_suffix: str,
        device_approval: bool = False,
    ) -> None:
        self.name = name
        self.magicdns_suffix = magicdns_suffix
        self.device_approval = device_approval
        self._clock = clock
        self._rng = rng
        self.keys: dict[str, AuthKey] = {}
        self.devices: dict[str, Device] = {}
        self.split_dns: dict[str, list[str]] = {}
        # tag -> tags that own it, as in the policy file's `tagOwners`.
        self.tag_owners: dict[str, set[str]] = {}

    def knows(self, tailnet: str) -> bool:
        """`-` means the token's own tailnet; otherwise the organisation name."""
        return tailnet in ("-", self.name)

    # --- keys -----------------------------------------------------------------------------

    def create_key(
        self,
        *,
        token: AccessToken,
        reusable: bool,
        ephemeral: bool,
        preauthorized: bool,
        tags: list[str],
        expiry_seconds: int | None,
        description: str,
    ) -> tuple[AuthKey, str]:
        """Mint an auth key owned by the tailnet; returns it and its plaintext (once)."""
        if len(description) > MAX_DESCRIPTION:
            raise ApiError(
                status=400, message=f"description must be at most {MAX_DESCRIPTION} characters"
            )
        if not _DESCRIPTION.fullmatch(description):
            raise ApiError(
                status=400,
                message="description may only contain letters, digits, spaces, '-' and '_'",
            )
        self._check_tags(token=token, tags=tags)
        lifetime = DEFAULT_KEY_EXPIRY
        if expiry_seconds:
            if expiry_seconds < 0:
                raise ApiError(status=400, message="expirySeconds must not be negative")
            lifetime = datetime.timedelta(seconds=expiry_seconds)
            if lifetime > MAX_KEY_EXPIRY:
                raise ApiError(status=400, message="expirySeconds must be at most 90 days")
        key_id = credentials.new_id(self._rng, prefix="k")
        secret = f"{AUTHKEY_PREFIX}{key_id}-{credentials.new_secret()}"
        now = self._clock.now()
        key = AuthKey(
            id=key_id,
            secret_digest=credentials.digest(secret),
            created=now,
            expires=now + lifetime,
            reusable=reusable,
            ephemeral=ephemeral,
            preauthorized=preauthorized,
            tags=tuple(dict.fromkeys(tags)),
            description=description,
        )
        self.keys[key_id] = key
        return key, secret

    def _check_tags(self, *, token: AccessToken, tags: list[str]) -> None:
        owned = token.tags
        allowed = bool(tags) and all(
            tag in owned or bool(self.tag_owners.get(tag, set()) & owned) for tag in tags
        )
        if token.client.exact_tags:
            direct = {t for t in tags if t in owned}
            allowed = allowed and (direct == set(owned) or not direct)
        if not allowed:
            # Tailnet-owned keys (every OAuth-minted key) must carry tags; the real API answers
            # a missing or unowned tag with this same 400.
            listed = " ".join(tags)
            raise ApiError(
                status=400, message=f"requested tags [{listed}] are invalid or not permitted"
            )

    def active_keys(self) -> list[AuthKey]:
        now = self._clock.now()
        return [k for k in self.keys.values() if not k.invalid(now)]

    def get_key(self, key_id: str) -> AuthKey:
        key = self.keys.get(key_id)
        if key is None:
            raise ApiError(status=404, message="key not found")
        return key

    def delete_key(self, key_id: str) -> None:
        """Revoke a key; it stays readable with `invalid: true`, devices keep running."""
        key = self.get_key(key_id)
        if key.revoked is None:
            key.revoked = self._clock.now()

    # --- devices --------------------------------------------------------------------------

    def register_device(
        self, *, authkey: str, hostname: str, os: str = "linux", routes: tuple[str, ...] = ()
    ) -> Device:
        """A tailscaled joins with `authkey`: validate it, then add a device with its tags."""
        key = self._key_for(authkey)
        now = self._clock.now()
        if key.revoked is not None:
            raise RegistrationError(f"auth key {key.id} was revoked")
        if now >= key.expires:
            raise RegistrationError(f"auth key {key.id} has expired")
        if not key.reusable and key.uses > 0:
            raise RegistrationError(f"one-off auth key {key.id} was already used")
        key.uses += 1
        ipv4 = self._new_ipv4()
        device = Device(
            id=str(self._rng.randrange(10**14, 10**15)),
            node_id=credentials.new_id(self._rng, prefix="n"),
            hostname=hostname,
            name=f"{self._unique_name(hostname)}.{self.magicdns_suffix}",
            addresses=(str(ipv4), _ula_for(ipv4)),
            tags=key.tags,
            authorized=key.preauthorized or not self.device_approval,
            ephemeral=key.ephemeral,
            created=now,
            last_seen=now,
            os=os,
            key_id=key.id,
            advertised_routes=routes,
        )
        self.devices[device.id] = device
        return device

    def _key_for(self, authkey: str) -> AuthKey:
        key_id, _, _ = authkey.removeprefix(AUTHKEY_PREFIX).partition("-")
        key = self.keys.get(key_id) if authkey.startswith(AUTHKEY_PREFIX) else None
        if key is None or not credentials.matches(authkey, stored_digest=key.secret_digest):
            raise RegistrationError("invalid auth key")
        return key

    def _unique_name(self, hostname: str) -> str:
        # MagicDNS de-duplicates a taken machine name with a numeric suffix.
        label = re.sub(r"[^a-z0-9-]", "-", hostname.lower()).strip("-") or "device"
        taken = {d.name.split(".", 1)[0] for d in self.devices.values()}
        candidate, n = label, 0
        while candidate in taken:
            n += 1
            candidate = f"{label}-{n}"
        return candidate

    def _new_ipv4(self) -> ipaddress.IPv4Address:
        taken = {d.addresses[0] for d in self.devices.values()}
        while True:
            candidate = _CGNAT[self._rng.randrange(1, _CGNAT.num_addresses - 1)]
            if candidate != _QUAD100 and str(candidate) not in taken:
                return ipaddress.IPv4Address(candidate)

    def get_device(self, device_id: str) -> Device:
        """By legacy numeric `id` or by `nodeId` (both are accepted by the real API)."""
        for device in self.devices.values():
            if device_id in (device.id, device.node_id):
                return device
        raise ApiError(status=404, message="device not found")

    def delete_device(self, device_id: str) -> None:
        del self.devices[self.get_device(device_id).id]

    # --- split DNS ------------------------------------------------------------------------

    def patch_split_dns(self, changes: dict[str, list[str] | None]) -> dict[str, list[str]]:
        """Merge: listed domains are replaced, a null (or empty list) removes the domain."""
        _validate_split_dns(changes)
        for domain, servers in changes.items():
            if servers:
                self.split_dns[domain] = list(servers)
            else:
                self.split_dns.pop(domain, None)
        return dict(self.split_dns)

    def put_split_dns(self, settings: dict[str, list[str] | None]) -> dict[str, list[str]]:
        """Replace everything; `{}` clears all domains."""
        _validate_split_dns(settings)
        self.split_dns = {d: list(s) for d, s in settings.items() if s}
        return dict(self.split_dns)


def _ula_for(ipv4: ipaddress.IPv4Address) -> str:
    low = int(ipv4)
    return str(ipaddress.IPv6Address(f"{_ULA_HEAD}:{low >> 16:x}:{low & 0xFFFF:x}"))


def _validate_split_dns(settings: dict[str, list[str] | None]) -> None:
    for domain, servers in settings.items():
        if not domain or " " in domain:
            raise ApiError(status=400, message=f"invalid domain {domain!r}")
        for server in servers or []:
            if server.startswith("https://"):
                continue  # DNS-over-HTTPS resolvers are accepted as URLs
            try:
                ipaddress.ip_address(server)
            except ValueError:
                raise ApiError(
                    status=400, message=f"invalid nameserver {server!r} for {domain}"
                ) from None
