"""The JSON shapes of Tailscale's API v2 for keys and devices (tailscale.com/api, publicapi/).

Pure renderers from the fake's state to dictionaries, in one place so the wire format is easy
to compare with the published one. `render_key` includes the `key` secret only when it is given
the plaintext, which happens exactly once, in the create response.
"""

from __future__ import annotations

import datetime
from typing import Any

from .clock import format_rfc3339
from .tailnet import AuthKey, Device

# The zero time Go's encoding/json writes for "never" (tagged devices do not expire).
_NEVER = "0001-01-01T00:00:00Z"


def render_key(
    key: AuthKey, *, now: datetime.datetime, secret: str | None = None
) -> dict[str, Any]:
    """A key object; an invalid (revoked, expired, used) key is reported the documented way."""
    body: dict[str, Any] = {"id": key.id}
    if secret is not None:
        body["key"] = secret
    body["keyType"] = "auth"
    body["created"] = format_rfc3339(key.created)
    body["expires"] = format_rfc3339(key.expires)
    if key.revoked is not None:
        body["revoked"] = format_rfc3339(key.revoked)
    if key.invalid(now):
        body["invalid"] = True
    else:
        body["capabilities"] = {
            "devices": {
                "create": {
                    "reusable": key.reusable,
                    "ephemeral": key.ephemeral,
                    "preauthorized": key.preauthorized,
                    "tags": list(key.tags),
                }
            }
        }
    body["description"] = key.description
    return body


def render_device(device: Device, *, fields: str) -> dict[str, Any]:
    """A device object; `fields=all` adds routes, connectivity and posture identity."""
    body: dict[str, Any] = {
        "addresses": list(device.addresses),
        "id": device.id,
        "nodeId": device.node_id,
        "user": "tagged-devices" if device.tags else "",
        "name": device.name,
        "hostname": device.hostname,
        "clientVersion": "1.80.0-fake",
        "updateAvailable": False,
        "os": device.os,
        "created": format_rfc3339(device.created),
        "lastSeen": format_rfc3339(device.last_seen),
        "keyExpiryDisabled": bool(device.tags),
        "expires": _NEVER,
        "authorized": device.authorized,
        "isExternal": False,
        "isEphemeral": device.ephemeral,
        "machineKey": f"mkey:{device.node_id.lower()}",
        "nodeKey": f"nodekey:{device.node_id.lower()}",
        "blocksIncomingConnections": False,
        "tags": list(device.tags),
        "tailnetLockError": "",
        "tailnetLockKey": "",
    }
    if fields == "all":
        body["enabledRoutes"] = list(device.enabled_routes)
        body["advertisedRoutes"] = list(device.advertised_routes)
        body["clientConnectivity"] = {
            "endpoints": [],
            "mappingVariesByDestIP": False,
            "latency": {},
            "clientSupports": {
                "hairPinning": False,
                "ipv6": True,
                "pcp": False,
                "pmp": False,
                "udp": True,
                "upnp": False,
            },
        }
        body["postureIdentity"] = {"disabled": True}
    return body
