"""The auth-callout responder: answers nats-server on `$SYS.REQ.USER.AUTH` for nodeagents.

Each request is answered, never dropped: the user JWT of the node the token proves, or a
refusal naming why (no token, not the nodeagent's ServiceAccount, no node in the token, the
API unreachable). A request that is not a request JWT is logged and left unanswered (the
server then times the connection out). See `buscredentials` for the rules.
Must not: log a token or a JWT.
"""

from __future__ import annotations

import logging

import nkeys
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from tailwire.services.keyminter import buscredentials, metrics
from tailwire.services.keyminter.adapters import timing, tokenreview
from tailwire.shared import errors

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
    ) -> None:
        self.reviewer = reviewer
        self.issuer = issuer
        self.namespace = namespace
        self.service_account = service_account
        self.clock = clock
        self._subscription: Subscription | None = None

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
            review = await self.reviewer.review(request.token)
            node = buscredentials.node_of(
                review, service_account=self.service_account, namespace=self.namespace
            )
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
        log.info("bus credentials granted to %s for node %s", who, node)
        user = buscredentials.user_jwt(request, node=node, issuer=self.issuer, now=now)
        return buscredentials.response(request, issuer=self.issuer, now=now, user=user)

    async def _on_request(self, msg: Msg) -> None:
        try:
            reply = await self.answer(msg.data)
        except errors.MessageRejected as exc:
            log.warning("auth callout: %s", exc)
            return
        await msg.respond(reply)

    async def start(self, connection: Client) -> None:
        self._subscription = await connection.subscribe(
            buscredentials.AUTH_SUBJECT, cb=self._on_request
        )
        log.info("answering nodeagent bus credentials on %s", buscredentials.AUTH_SUBJECT)

    async def stop(self) -> None:
        if self._subscription is not None:
            await self._subscription.unsubscribe()
            self._subscription = None
