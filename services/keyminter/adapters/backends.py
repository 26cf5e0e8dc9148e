"""What every control-API backend offers the keyminter.

`Backend` is the interface the handlers use (Tailscale and Headscale both implement it);
HTTP outcomes become the project's errors in `tailwire.shared.httperrors`. This module must
not retry (see `retrying`).
"""

from __future__ import annotations

import dataclasses
import datetime
from typing import Protocol

from pydantic import SecretStr

from tailwire.services.keyminter import domain


@dataclasses.dataclass(frozen=True, kw_only=True)
class MintedKey:
    """A freshly minted key; `secret` is only ever written to a Secret."""

    key_id: str
    secret: SecretStr = dataclasses.field(repr=False)
    expires_at: datetime.datetime


class Backend(Protocol):
    """One tailnet's control API, as the keyminter needs it."""

    name: str

    async def mint_key(
        self,
        *,
        tags: tuple[str, ...],
        reusable: bool,
        ephemeral: bool,
        preauthorized: bool,
        expiry_seconds: int,
        description: str,
    ) -> MintedKey: ...

    async def delete_key(self, key_id: str) -> None: ...

    async def list_keys(self) -> list[domain.KeyInfo]: ...

    async def list_devices(self) -> list[domain.Device]: ...

    async def delete_device(self, device_id: str) -> None: ...
