"""TokenReview: asks the API server what a ServiceAccount token proves.

Used by the bus credentials (`buscredentials`): the reviewed token's user and its extra
claims (the node a bound token names) decide which node's permissions a nodeagent gets.
Errors leave as `tailwire.shared.errors` (unreachable API: transient).
Must not: log or return the token.
"""

from __future__ import annotations

import aiohttp
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from tailwire.services.keyminter import buscredentials
from tailwire.services.keyminter.adapters.secrets import ApiClientFactory
from tailwire.shared.k8s import failures


class TokenReviewer:
    def __init__(self, api_client: ApiClientFactory, *, audience: str) -> None:
        self._api_client = api_client
        self.audience = audience

    async def review(self, token: str) -> buscredentials.Review:
        body = client.V1TokenReview(
            spec=client.V1TokenReviewSpec(token=token, audiences=[self.audience])
        )
        try:
            api = client.AuthenticationV1Api(await self._api_client())
            reviewed = await api.create_token_review(body)
        except (ApiException, aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise failures.convert(exc, what="token review") from None
        status = reviewed.status or client.V1TokenReviewStatus()
        user = status.user or client.V1UserInfo()
        audiences = status.audiences or []
        if status.authenticated and self.audience not in audiences:
            return buscredentials.Review(
                authenticated=False, error=f"token is not for the audience {self.audience}"
            )
        return buscredentials.Review(
            authenticated=bool(status.authenticated),
            username=user.username or "",
            extra={k: tuple(v or ()) for k, v in (user.extra or {}).items()},
            error=status.error or "",
        )
