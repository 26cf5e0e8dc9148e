"""Dead letters: `tailwire.v1.deadletter.<service>`, a rejected message and the reason.

Nothing is lost: a message that fails validation is acknowledged (so it is not redelivered
forever) and its bytes land here with the reason, for an operator or a replay tool.
"""

from __future__ import annotations

import base64
import datetime
from typing import Literal

from pydantic import Field

from tailwire.shared.events import base

# Keep dead letters well under the server's max_payload even for oversized inputs.
MAX_KEPT_BYTES = 64 * 1024


class DeadLetter(base.Event):
    type: Literal["deadletter"] = "deadletter"
    service: str
    subject: str
    reason: str
    # The original payload, base64 (it may not be text), cut at MAX_KEPT_BYTES.
    payload_b64: str
    payload_size: int
    truncated: bool = False
    headers: dict[str, str] = Field(default_factory=dict)
    rejected_at: datetime.datetime = Field(default_factory=base.utcnow)

    @classmethod
    def of(
        cls, *, service: str, subject: str, reason: str, payload: bytes, headers: dict[str, str]
    ) -> DeadLetter:
        kept = payload[:MAX_KEPT_BYTES]
        return cls(
            service=service,
            subject=subject,
            reason=reason[:2000],
            payload_b64=base64.b64encode(kept).decode("ascii"),
            payload_size=len(payload),
            truncated=len(kept) < len(payload),
            headers={k: v for k, v in headers.items() if k.lower() != "authorization"},
        )
