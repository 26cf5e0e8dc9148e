"""The auth-callout responder: answers nats-server on `$SYS.REQ.USER.AUTH` for nodeagents.

Each request is answered, never dropped: the user JWT of the node the token proves, or a
refusal naming why (no token, not the nodeagent's ServiceAccount, no node in the token, the
API unreachable, too many requests pending). A request that is not a request JWT is logged
and left unanswered (the server then times the connection out). See `buscredentials` for the
rules.

Requests are answered concurrently, at most `concurrency` TokenReviews at once and at most
`max_pending` requests in hand (more are refused at once as busy): a flood of junk
connections must not keep a real nodeagent from authenticating. A review's outcome is cached
by the token's hash, `cache_seconds` when accepted and `refusal_seconds` when not, so a
reconnecting agent, or the same junk again, costs no API call.
Must not: log a token or a JWT, or keep one (only its hash).
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import logging
import time

import nkeys
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from tailwire.services.keyminter import buscredentials, metrics
from tailwire.services.keyminter.adapters import timing, tokenreview
from tailwire.shared import cancelling, errors

log = logging.getLogger(__name__)


class BusAuth:
    def __init__(
        self,
        *,
        reviewer: tokenreview.TokenReviewer,
        issuer: nkeys.KeyPair,
        namespace: str,
        service_account: str,
        clock: timing.Clock,
        concurrency: int = 16,
        max_pending: int = 256,
        cache_seconds: float = 60.0,
        refusal_seconds: float = 10.0,
        cache_size: int = 4096,
    ) -> None:
        self.reviewer = reviewer
        self.issuer = issuer
        self.namespace = namespace
        self.service_account = service_account
        self.clock = clock
        self.max_pending = max_pending
        self.cache_seconds = cache_seconds
        self.refusal_seconds = refusal_seconds
        self.cache_size = cache_size
        self._slots = asyncio.Semaphore(concurrency)
        self._pending: set[asyncio.Task[None]] = set()
        # sha256(token) -> (monotonic deadline, review); oldest first.
        self._cache: collections.OrderedDict[bytes, tuple[float, buscredentials.Review]] = (
            collections.OrderedDict()
        )
        self._subscription: Subscription | None = None

    async def _review(self, token: str) -> buscredentials.Review:
        """The token's review, from the cache while it is fresh; one API call otherwise."""
        key = hashlib.sha256(token.encode()).digest()
        now = time.monotonic()
        cached = self._cache.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        async with self._slots:
            review = await self.reviewer.review(token)
        ttl = self.cache_seconds if review.authenticated else self.refusal_seconds
        self._cache[key] = (time.monotonic() + ttl, review)
        self._cache.move_to_end(key)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return review

    async def answer(self, data: bytes) -> bytes:
        """The signed response to one authorization request (MessageRejected if malformed)."""
        request = buscredentials.parse_request(data)
        now = self.clock.now()
        who = request.client_name or request.user_nkey[:8]
        try:
            if not request.token:
                raise buscredentials.Refused(
                    "no token: a nodeagent connects with its ServiceAccount token "
                    "(TAILWIRE_NATS_TOKEN_FILE)"
                )
            review = await self._review(request.token)
            node = buscredentials.node_of(
                review, service_account=self.service_account, namespace=self.namespace
            )
            expires = buscredentials.token_expiry(request.token)
            if expires is not None and expires <= now:
                raise buscredentials.Refused("token expired")
        except buscredentials.Refused as exc:
            metrics.BUS_AUTH.labels(outcome="refused").inc()
            log.warning("bus credentials refused to %s: %s", who, exc)
            return buscredentials.response(request, issuer=self.issuer, now=now, error=str(exc))
        except errors.BackendError as exc:
            metrics.BUS_AUTH.labels(outcome="review_failed").inc()
            log.warning("bus credentials for %s: %s", who, exc)
            return buscredentials.response(
                request, issuer=self.issuer, now=now, error=f"token review failed: {exc}"
            )
        metrics.BUS_AUTH.labels(outcome="granted").inc()
        log.info(
            "bus credentials granted to %s for node %s until %s",
            who,
            node,
            expires.isoformat() if expires else "the connection ends",
        )
        user = buscredentials.user_jwt(
            request, node=node, issuer=self.issuer, now=now, expires=expires
        )
        return buscredentials.response(request, issuer=self.issuer, now=now, user=user)

    async def _on_request(self, msg: Msg) -> None:
        """nats-py runs a subscription's callbacks one after another: answer in a task."""
        if len(self._pending) >= self.max_pending:
            await self._refuse_busy(msg)
            return
        task = asyncio.create_task(self._serve(msg), name="tailwire-bus-auth")
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _serve(self, msg: Msg) -> None:
        try:
            reply = await self.answer(msg.data)
        except errors.MessageRejected as exc:
            log.warning("auth callout: %s", exc)
            return
        await msg.respond(reply)

    async def _refuse_busy(self, msg: Msg) -> None:
        try:
            request = buscredentials.parse_request(msg.data)
        except errors.MessageRejected as exc:
            log.warning("auth callout: %s", exc)
            return
        metrics.BUS_AUTH.labels(outcome="busy").inc()
        log.warning("bus credentials refused: %d requests pending", len(self._pending))
        await msg.respond(
            buscredentials.response(
                request,
                issuer=self.issuer,
                now=self.clock.now(),
                error=f"busy: {len(self._pending)} authorizations pending; reconnect later",
            )
        )

    async def start(self, connection: Client) -> None:
        self._subscription = await connection.subscribe(
            buscredentials.AUTH_SUBJECT, cb=self._on_request
        )
        log.info("answering nodeagent bus credentials on %s", buscredentials.AUTH_SUBJECT)

    async def stop(self) -> None:
        if self._subscription is not None:
            await self._subscription.unsubscribe()
            self._subscription = None
        await cancelling.cancel_and_wait(list(self._pending))
