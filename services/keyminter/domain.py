"""Pure decisions of the keyminter: frozen models and functions, no I/O, no framework.

Responsible for: when a stored key is still good, when it is due for renewal, the marker a
minted key carries so a restarted keyminter recognises its own keys, which devices belong
to an owner, and the backoff schedule. It must not talk to anything, read the clock
itself (callers pass `now`) or hold a key's secret (only ids and timestamps live here).
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import random
import re
from typing import Protocol

from tailwire.shared import errors

# Tailscale limits a key description to 50 characters of [A-Za-z0-9 _-].
MAX_DESCRIPTION = 50
MARKER_PREFIX = "tailwire"
_HOSTNAME_SAFE = re.compile(r"[^a-z0-9-]")
# Redelivery delay of a failed request when nothing better is known (seconds).
DEFAULT_REDELIVERY = 30.0


@dataclasses.dataclass(frozen=True, kw_only=True)
class KeyOptions:
    """What a key lets a device do besides its tags."""

    reusable: bool
    ephemeral: bool
    preauthorized: bool

    @classmethod
    def of(cls, source: _HasOptions) -> KeyOptions:
        return cls(
            reusable=source.reusable,
            ephemeral=source.ephemeral,
            preauthorized=source.preauthorized,
        )


class _HasOptions(Protocol):
    @property
    def reusable(self) -> bool: ...
    @property
    def ephemeral(self) -> bool: ...
    @property
    def preauthorized(self) -> bool: ...


@dataclasses.dataclass(frozen=True, kw_only=True)
class StoredKey:
    """What the owner's Secret says about the key it holds (never the key itself)."""

    key_id: str
    tailnet: str
    tags: tuple[str, ...]
    issued_at: datetime.datetime
    expires_at: datetime.datetime
    has_key: bool = True
    # Every tag a key of this owner ever carried: its devices keep the tags they joined with.
    tag_history: tuple[str, ...] = ()
    # None: unknown (an older Secret); not a reason to mint again by itself.
    options: KeyOptions | None = None

    def renew_at(self, *, fraction: float) -> datetime.datetime:
        """The moment `fraction` of the key's lifetime has passed."""
        return self.issued_at + (self.expires_at - self.issued_at) * fraction


@dataclasses.dataclass(frozen=True, kw_only=True)
class Device:
    """A tailnet device as the control API lists it (id, reported hostname, tags)."""

    id: str
    hostname: str
    tags: tuple[str, ...]


@dataclasses.dataclass(frozen=True, kw_only=True)
class KeyInfo:
    """A key as the control API lists it: no secret, only what identifies it."""

    id: str
    description: str
    invalid: bool


def is_reusable(
    stored: StoredKey | None,
    *,
    tailnet: str,
    tags: tuple[str, ...],
    now: datetime.datetime,
    fraction: float,
    options: KeyOptions | None = None,
) -> bool:
    """Whether the stored key serves the request as is: same tailnet, tags and options, and
    not yet due for renewal."""
    if stored is None or not stored.has_key:
        return False
    if options is not None and stored.options is not None and stored.options != options:
        return False
    if stored.tailnet != tailnet or tuple(sorted(stored.tags)) != tuple(sorted(tags)):
        return False
    return now < stored.renew_at(fraction=fraction)


def tag_history(stored: StoredKey | None, *, tags: tuple[str, ...]) -> tuple[str, ...]:
    """The owner's tags so far, plus `tags` (sorted, each once)."""
    earlier = (*stored.tag_history, *stored.tags) if stored is not None else ()
    return tuple(sorted({*earlier, *tags}))


def key_marker(owner_uid: str) -> str:
    """The description every key of one owner carries: `tailwire <24 hex of the uid hash>`.

    It identifies the owner without naming it (descriptions show in the admin console) and
    lets a restarted keyminter find keys minted just before a crash.
    """
    digest = hashlib.sha256(owner_uid.encode()).hexdigest()[:24]
    marker = f"{MARKER_PREFIX} {digest}"
    assert len(marker) <= MAX_DESCRIPTION
    return marker


def orphaned_keys(keys: list[KeyInfo], *, marker: str, keep: str | None) -> list[KeyInfo]:
    """Valid keys of this owner (by marker) other than the one its Secret holds."""
    return [k for k in keys if k.description == marker and not k.invalid and k.id != keep]


def _named_by(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + "-")


def owned_devices(
    devices: list[Device],
    *,
    hostname_prefix: str,
    tags: tuple[str, ...],
    nested_prefixes: tuple[str, ...] = (),
) -> list[Device]:
    """Devices the owner created: per-node hostnames `<prefix>` or `<prefix>-<node>` (as
    tailscaled reports them, or as MagicDNS de-duplicated them) that carry one of its tags,
    except those a longer prefix of another owner names (`tailwire-payments-eu-node-a` is
    `payments-eu`'s, not `payments`').

    Matching on the hostname alone could remove a person's laptop named alike, on tags alone
    every other group sharing `tag:k8s`; both together are what this owner's key produced.
    """
    prefix = _HOSTNAME_SAFE.sub("-", hostname_prefix.lower())
    others = [
        other
        for other in (_HOSTNAME_SAFE.sub("-", p.lower()) for p in nested_prefixes)
        if len(other) > len(prefix) and _named_by(other, prefix)
    ]
    wanted = set(tags)
    owned = []
    for device in devices:
        name = device.hostname.lower()
        if not _named_by(name, prefix) or not wanted & set(device.tags):
            continue
        if any(_named_by(name, other) for other in others):
            continue
        owned.append(device)
    return owned


@dataclasses.dataclass(frozen=True, kw_only=True)
class Backoff:
    """Jittered exponential backoff ("full jitter"), honouring a server's Retry-After."""

    base: float = 1.0
    cap: float = 60.0
    attempts: int = 5

    def delay(self, *, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        """Seconds to wait before attempt `attempt + 1` (attempt counts from 1)."""
        ceiling = min(self.cap, self.base * (2 ** (attempt - 1)))
        jittered = rng.uniform(ceiling / 2, ceiling)
        if retry_after is not None:
            # The server's hint is a floor (never come back earlier than asked); a little
            # jitter on top keeps many clients from returning in the same instant.
            return max(retry_after, 0.0) + rng.uniform(0, self.base / 2)
        return jittered


@dataclasses.dataclass(frozen=True, kw_only=True)
class Failure:
    """How a failed request is reported: reason, message, and whether it comes back."""

    reason: str
    message: str
    retry_after: float | None  # None: permanent (acknowledged and dead-lettered)


def classify(exc: errors.TailwireError) -> Failure:
    """The reason a failure gets on `keys.failed`, from the error tree alone."""
    message = str(exc)
    if isinstance(exc, errors.ConfigurationError):
        return Failure(reason="NotConfigured", message=message, retry_after=None)
    if isinstance(exc, errors.AuthenticationFailed):
        return Failure(reason="AuthenticationFailed", message=message, retry_after=None)
    if isinstance(exc, errors.PermanentBackendError):
        reason = "TagsNotPermitted" if "tags" in message.lower() else "Refused"
        return Failure(reason=reason, message=message, retry_after=None)
    if isinstance(exc, errors.TransientBackendError):
        delay = exc.retry_after if exc.retry_after is not None else DEFAULT_REDELIVERY
        return Failure(reason="BackendUnavailable", message=message, retry_after=delay)
    return Failure(reason="Error", message=message, retry_after=DEFAULT_REDELIVERY)
