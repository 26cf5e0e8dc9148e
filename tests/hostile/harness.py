"""Publish hostile messages to a running service and collect what it did with them.

`Rejections` publishes each message to JetStream with nats-py (so it lands in the service's
stream exactly as a misbehaving producer would put it there), then waits for one dead letter
per message on `tailwire.v1.deadletter.<service>` (a core subscription: it sees every
publish, even one the stream deduplicates). `ErrorLog` records every ERROR raised
inside a handler: FastStream logs escaped exceptions on its own, non-propagating logger.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from collections.abc import Iterator

from nats.aio.client import Client
from nats.aio.msg import Msg

from tailwire.shared import subjects
from tailwire.shared.events import deadletter

from .payloads import MAX_KEPT, Hostile


class ErrorLog(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def lines(self) -> list[str]:
        return [f"{r.name}: {r.getMessage()}" for r in self.records]


@contextlib.contextmanager
def error_log() -> Iterator[ErrorLog]:
    handler = ErrorLog()
    loggers = [
        logging.getLogger(),
        logging.getLogger("faststream"),
        logging.getLogger("faststream.access.nats"),
    ]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        yield handler
    finally:
        for logger in loggers:
            logger.removeHandler(handler)


class Rejections:
    """Dead letters of one service, in arrival order."""

    def __init__(self, client: Client, *, service: str) -> None:
        self.client = client
        self.service = service
        self.letters: list[deadletter.DeadLetter] = []
        self._arrived = asyncio.Event()

    async def open(self) -> None:
        await self.client.subscribe(subjects.deadletter(self.service), cb=self._on_letter)
        await self.client.flush()

    async def _on_letter(self, msg: Msg) -> None:
        self.letters.append(deadletter.DeadLetter.model_validate_json(msg.data))
        self._arrived.set()

    async def check(self, batch: list[Hostile], *, within: float = 15.0) -> None:
        """Send `batch` and expect a dead letter for every message. The cluster and nodes
        streams keep one message per subject, so a hostile message superseded before the
        service read it would rightly never arrive: messages on one subject go in rounds."""
        rounds: list[list[Hostile]] = []
        for item in batch:
            for round_ in rounds:
                if all(other.subject != item.subject for other in round_):
                    round_.append(item)
                    break
            else:
                rounds.append([item])
        for round_ in rounds:
            await self.send(round_)
            await self.expect(round_, within=within)

    async def send(self, batch: list[Hostile]) -> None:
        js = self.client.jetstream()
        for item in batch:
            await js.publish(item.subject, item.body, headers=item.headers or None)

    async def expect(self, batch: list[Hostile], *, within: float = 15.0) -> None:
        """One dead letter per message of `batch`, each with the subject, the payload's
        first bytes and a reason; fails naming the messages that never came back."""
        wanted = {(h.subject, h.body[:MAX_KEPT]): h for h in batch}
        found: dict[tuple[str, bytes], deadletter.DeadLetter] = {}
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                while len(found) < len(wanted):
                    for letter in self.letters:
                        key = (letter.subject, base64.b64decode(letter.payload_b64))
                        if key in wanted:
                            found[key] = letter
                    if len(found) < len(wanted):
                        self._arrived.clear()
                        await self._arrived.wait()
        missing = [(h.subject, h.why, h.body[:80]) for k, h in wanted.items() if k not in found]
        assert not missing, f"{len(missing)} hostile messages were not dead-lettered: {missing}"
        for key, letter in found.items():
            hostile = wanted[key]
            assert letter.service == self.service
            assert letter.reason.strip(), f"no reason for {hostile.why} on {hostile.subject}"
            assert letter.payload_size == len(hostile.body)
            assert letter.truncated == (len(hostile.body) > MAX_KEPT)
