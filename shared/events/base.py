"""The base of every bus message and the few value types several areas share."""

from __future__ import annotations

import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

VERSION: Literal[1] = 1
# NATS' default max_payload is 1 MiB; we refuse to publish more than this so a runaway
# object (a 10k-entry label map) fails loudly at the producer, not at the server.
MAX_MESSAGE_BYTES = 512 * 1024


class Frozen(BaseModel):
    """Immutable value with unknown fields refused; the base of all models here."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class Event(Frozen):
    """A bus message. Subclasses pin `type` to a literal."""

    version: Literal[1] = VERSION
    type: str

    def to_bytes(self) -> bytes:
        """The wire form: compact JSON, no `None` fields omitted (explicit is easier to read)."""
        return self.model_dump_json().encode("utf-8")


class OwnerRef(Frozen):
    """The Kubernetes object something belongs to (a key, a Secret, a status)."""

    api_version: str
    kind: str
    namespace: str | None = None
    name: str
    uid: str


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(tz=datetime.UTC)


class Condition(Frozen):
    """A Kubernetes-style status condition."""

    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str = ""
    observed_generation: int | None = Field(default=None, alias="observedGeneration")
    last_transition_time: datetime.datetime | None = Field(default=None, alias="lastTransitionTime")
