"""Key work between the renderer and the keyminter: `tailwire.v1.keys.<event>.<owner>`.

No model here has a field that can hold a key: `ready` names the Secret and the key id, never
the key itself (DESIGN.md: secrets never travel on the bus).
"""

from __future__ import annotations

import datetime
from typing import Literal

from pydantic import Field

from tailwire.shared.events import base


class KeyRequest(base.Event):
    """Ask for a valid authkey for `owner` (idempotent: a valid key is reused)."""

    type: Literal["keys.request"] = "keys.request"
    owner: base.OwnerRef
    # The TailscaleTailnet to mint in; None means the default tailnet from settings.
    tailnet: str | None = None
    tags: tuple[str, ...] = ("tag:k8s",)
    reusable: bool = True
    # The renderer asks for ephemeral keys for gateways (rendering.key_request says why).
    ephemeral: bool = False
    preauthorized: bool = True
    # Devices this owner creates are named `<hostname_prefix>-<node>`; revocation finds them.
    hostname_prefix: str
    # Prefixes of other owners that extend this one (`tailwire-payments-eu` under
    # `tailwire-payments`): devices matching one of them are that owner's, never revoked here.
    nested_prefixes: tuple[str, ...] = ()
    secret_name: str
    secret_namespace: str
    # Set on deletion: revoke the key and remove every device the owner created.
    revoke: bool = False


class KeyReady(base.Event):
    """A valid key is in the named Secret."""

    type: Literal["keys.ready"] = "keys.ready"
    owner: base.OwnerRef
    tailnet: str
    secret_name: str
    secret_namespace: str
    key_id: str
    expires_at: datetime.datetime
    tags: tuple[str, ...]


class KeyFailed(base.Event):
    """Minting failed in a way retrying will not fix (401/403, tags not owned, bad tailnet)."""

    type: Literal["keys.failed"] = "keys.failed"
    owner: base.OwnerRef
    tailnet: str
    reason: str
    message: str
    retryable: bool = False


class KeyRevoked(base.Event):
    """The owner's key is deleted and every device it created is removed."""

    type: Literal["keys.revoked"] = "keys.revoked"
    owner: base.OwnerRef
    tailnet: str
    key_ids: tuple[str, ...] = ()
    devices_removed: tuple[str, ...] = Field(default=(), description="device hostnames")


class TailnetChecked(base.Event):
    """What the keyminter found when it called a TailscaleTailnet's control API with the
    credentials of its Secret (`tailwire.v1.keys.tailnet.tailscaletailnet._.<name>`).

    Published when the outcome changes, and at least every heartbeat while it does not, so
    `last_connected` stays fresh without a message per check. The renderer turns it into the
    TailscaleTailnet's status and the `tailnets[]` entries of TailscaleGateways.
    """

    type: Literal["keys.tailnet"] = "keys.tailnet"
    tailnet: str = Field(description="the TailscaleTailnet's name")
    uid: str | None = Field(default=None, description="the TailscaleTailnet's uid")
    generation: int | None = Field(default=None, description="the spec generation checked")
    connected: bool
    reason: str = Field(
        description="Connected, CredentialsRefused, Unreachable, NotConfigured or Refused"
    )
    message: str = ""
    checked_at: datetime.datetime
    last_connected: datetime.datetime | None = Field(
        default=None, description="the last check that found the API accepting the credentials"
    )
