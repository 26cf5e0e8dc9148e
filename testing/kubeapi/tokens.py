"""ServiceAccount tokens and TokenReview, as kube-apiserver answers them.

A test issues a token for a ServiceAccount (optionally bound to a pod on a node, as a
projected token is) with its audiences; ``POST /apis/authentication.k8s.io/v1/tokenreviews``
then answers what the real server would: the user `system:serviceaccount:<ns>:<name>`, its
groups, and, for a bound token, the extra claims naming the pod and node (Kubernetes 1.30+);
an unknown, revoked or expired token, or one for none of the asked audiences, is
unauthenticated with the real server's error wording.

Must not: store TokenReviews (the real server does not either).
"""

from __future__ import annotations

import dataclasses
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any

JSON = dict[str, Any]
DEFAULT_AUDIENCE = "https://kubernetes.default.svc.cluster.local"
NODE_NAME = "authentication.kubernetes.io/node-name"
POD_NAME = "authentication.kubernetes.io/pod-name"


@dataclasses.dataclass(frozen=True, kw_only=True)
class Issued:
    namespace: str
    service_account: str
    audiences: tuple[str, ...]
    expires_at: float
    node: str | None
    pod: str | None

    @property
    def username(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.service_account}"


class Tokens:
    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._issued: dict[str, Issued] = {}
        self._clock = clock

    def issue(
        self,
        *,
        namespace: str,
        service_account: str,
        audiences: tuple[str, ...] = (DEFAULT_AUDIENCE,),
        node: str | None = None,
        pod: str | None = None,
        lifetime: float = 3600.0,
    ) -> str:
        token = "eyJ" + secrets.token_urlsafe(48)  # shaped like a JWT's start, opaque here
        self._issued[token] = Issued(
            namespace=namespace,
            service_account=service_account,
            audiences=audiences,
            expires_at=self._clock() + lifetime,
            node=node,
            pod=pod,
        )
        return token

    def revoke(self, token: str) -> None:
        self._issued.pop(token, None)

    def review(self, body: Mapping[str, Any]) -> JSON:
        spec = body.get("spec") or {}
        asked = tuple(spec.get("audiences") or (DEFAULT_AUDIENCE,))
        issued = self._issued.get(str(spec.get("token") or ""))
        status: JSON
        if issued is None or issued.expires_at <= self._clock():
            status = {"authenticated": False, "error": "[invalid bearer token, Token has expired.]"}
        elif not set(asked) & set(issued.audiences):
            status = {
                "authenticated": False,
                "error": "[invalid bearer token, token audiences "
                f"{list(issued.audiences)} is invalid for the target audiences {list(asked)}]",
            }
        else:
            extra: dict[str, list[str]] = {}
            if issued.pod is not None:
                extra[POD_NAME] = [issued.pod]
            if issued.node is not None:
                extra[NODE_NAME] = [issued.node]
            status = {
                "authenticated": True,
                "audiences": [a for a in asked if a in issued.audiences],
                "user": {
                    "username": issued.username,
                    "groups": [
                        "system:serviceaccounts",
                        f"system:serviceaccounts:{issued.namespace}",
                        "system:authenticated",
                    ],
                    "extra": extra,
                },
            }
        return {
            "kind": "TokenReview",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"creationTimestamp": None},
            "spec": dict(spec),
            "status": status,
        }
