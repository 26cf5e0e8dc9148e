"""The launcher's own view of the bus: an all-seeing test user, message capture, last values.

The secured nats-server of the system has one user per service and per node (from
`tailwire.shared.permissions`) plus `ADMIN_USER`, which may publish and subscribe anything;
only the launcher and tests use it (to capture every message, read plans and acks). No
service ever gets its password.

Must not: publish on tailwire subjects (observing only), or be imported by services.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg

from tailwire.shared import bus, subjects
from tailwire.shared.events import nodes

ADMIN_USER = "tailwire-test-admin"


def admin_block(password: str) -> str:
    """The nats.conf user entry of the admin (same shape as permissions.render_nats_config)."""
    return (
        f'    {{ user: "{ADMIN_USER}", password: "{password}", permissions: {{\n'
        '        publish: { allow: [">"] }\n'
        '        subscribe: { allow: [">"] }\n'
        "    } }"
    )


def with_admin(config: str, *, password: str) -> str:
    """Add the admin user to a config rendered by `permissions.render_nats_config`."""
    closing = "\n  ]\n}\n"
    if not config.endswith(closing):
        raise ValueError("unexpected nats config shape: cannot add the admin user")
    return config[: -len(closing)] + ",\n" + admin_block(password) + closing


@dataclasses.dataclass(frozen=True, kw_only=True)
class Captured:
    """One message seen on the bus."""

    subject: str
    data: bytes
    headers: dict[str, str]
    received_at: float  # time.monotonic() on arrival

    @property
    def trace_id(self) -> str | None:
        parent = self.headers.get("traceparent", "")
        parts = parent.split("-")
        return parts[1] if len(parts) == 4 else None


class Capture:
    """Every message on `tailwire.>` while the capture is open, in arrival order."""

    def __init__(self) -> None:
        self.messages: list[Captured] = []
        self._changed = asyncio.Event()

    async def on_message(self, msg: Msg) -> None:
        self.messages.append(
            Captured(
                subject=msg.subject,
                data=msg.data,
                headers=dict(msg.headers or {}),
                received_at=time.monotonic(),
            )
        )
        self._changed.set()

    def on(self, subject_prefix: str) -> list[Captured]:
        return [m for m in self.messages if m.subject.startswith(subject_prefix)]

    async def wait_for(self, subject_prefix: str, *, within: float = 10.0) -> Captured:
        """The first message (already captured or to come) whose subject starts so."""
        async with asyncio.timeout(within):
            while not (found := self.on(subject_prefix)):
                self._changed.clear()
                await self._changed.wait()
        return found[0]


@contextlib.asynccontextmanager
async def capturing(client: Client) -> AsyncIterator[Capture]:
    capture = Capture()
    sub = await client.subscribe(f"{subjects.ROOT}.>", cb=capture.on_message)
    await client.flush()
    try:
        yield capture
    finally:
        with contextlib.suppress(nats.errors.Error):
            await sub.unsubscribe()


async def last_message(client: Client, subject: str) -> bytes | None:
    """The last message stored on `subject` (compacted streams), or None."""
    js = client.jetstream()
    try:
        msg = await js.get_last_msg(bus.stream_for(subject), subject)
    except (nats.js.errors.NotFoundError, nats.errors.TimeoutError):
        return None
    return msg.data


async def last_ack(client: Client, node: str) -> nodes.NodeAck | None:
    data = await last_message(client, subjects.node_ack(node))
    return nodes.NodeAck.model_validate_json(data) if data else None


async def last_plan(client: Client, node: str) -> nodes.NodePlan | None:
    data = await last_message(client, subjects.node_plan(node))
    return nodes.NodePlan.model_validate_json(data) if data else None


async def connect(url: str, *, user: str, password: str) -> Client:
    return await nats.connect(
        url,
        user=user,
        password=password,
        name="tailwire-system-launcher",
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.5,
    )
