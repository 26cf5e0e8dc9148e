"""Identifiers and secrets in the shapes the real control planes hand out.

Secrets are generated here and only their SHA-256 digests are kept by the state modules, so
nothing the fake lists, logs or raises can leak one; the plaintext is returned once, to the
caller that created it. Identifiers come from a seeded RNG so a run is reproducible. This
module must not store anything.
"""

from __future__ import annotations

import hashlib
import hmac
import random
import secrets
import string

_ALPHANUMERIC = string.ascii_letters + string.digits


def new_id(rng: random.Random, *, prefix: str, length: int = 8) -> str:
    """A Tailscale-style identifier such as `kX3b9QwERCNTRL` (prefix, random, `CNTRL`)."""
    return prefix + "".join(rng.choices(_ALPHANUMERIC, k=length)) + "CNTRL"


def new_secret(length: int = 32) -> str:
    """Unguessable secret material; deliberately not from the seeded RNG."""
    return "".join(secrets.choice(_ALPHANUMERIC) for _ in range(length))


def digest(secret: str) -> str:
    """What the fake keeps instead of a secret."""
    return hashlib.sha256(secret.encode()).hexdigest()


def matches(secret: str, *, stored_digest: str) -> bool:
    """Compare a presented secret with a stored digest in constant time."""
    return hmac.compare_digest(digest(secret), stored_digest)
