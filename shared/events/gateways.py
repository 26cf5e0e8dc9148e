"""Gateway configs: `tailwire.v1.gateway.<group>.config` (compacted, last per subject).

The tailscaled config file (`ipn.ConfigVAlpha`) rendered from a group's spec, with `AuthKey`
only as a `file:` reference to the mounted Secret, so nothing secret travels. The hash lets
the nodeagent skip reloads that would change nothing.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import Field

from tailwire.shared import ids
from tailwire.shared.events import base


def config_hash(config: dict[str, Any]) -> str:
    """sha256 over canonical JSON: the same config always hashes the same."""
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


# Both name a directory on every node (k8s.names.gateway_state_dir): object names only.
_NAME = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"


class GatewayConfig(base.Event):
    type: Literal["gateway.config"] = "gateway.config"
    group: ids.GroupName = Field(pattern=_NAME, max_length=253)
    tailnet: str = Field(pattern=_NAME, max_length=253)
    generation: int
    config: dict[str, Any]
    hash: str
