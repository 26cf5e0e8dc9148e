"""Which control API a key request goes to, and with which credentials.

The default tailnet (`tailnet: None`) comes from `TAILWIRE_TAILSCALE_*` settings; a named
one from its `TailscaleTailnet` resource and the Secret that resource references
(`client_id`/`client_secret` for Tailscale OAuth, `api_key` for Headscale). Backends are
built once per tailnet, wrapped in retries and that tailnet's rate limit, and forgotten when
their credentials are refused so a rotated Secret is picked up. Missing configuration is a
`ConfigurationError` naming the setting or field. This module must not log a credential.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import random
from collections.abc import Callable

import httpx
import pydantic
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from tailwire.services.keyminter import domain
from tailwire.services.keyminter.adapters import (
    headscale_api,
    retrying,
    secrets,
    tailscale_api,
    timing,
)
from tailwire.shared import errors, settings
from tailwire.shared.k8s import failures
from tailwire.shared.resources import tailscaletailnet

HttpFactory = Callable[[str], httpx.AsyncClient]

MISSING_DEFAULT = (
    "no default tailnet is configured: set TAILWIRE_TAILSCALE_OAUTH_CLIENT_ID and "
    "TAILWIRE_TAILSCALE_OAUTH_CLIENT_SECRET (or name a TailscaleTailnet in the request)"
)


def default_http(base_url: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=base_url, timeout=httpx.Timeout(15.0))


class Tailnets:
    """Backends by tailnet name (None: the default tailnet)."""

    def __init__(
        self,
        *,
        tailscale: settings.TailscaleSettings,
        kube: settings.KubernetesSettings,
        api_client: secrets.ApiClientFactory,
        clock: timing.Clock,
        sleep: timing.Sleeper,
        backoff: domain.Backoff,
        rate: float,
        burst: int,
        http: HttpFactory = default_http,
        rng: random.Random | None = None,
    ) -> None:
        self._tailscale = tailscale
        self._kube = kube
        self._api_client = api_client
        self._clock = clock
        self._sleep = sleep
        self._backoff = backoff
        self._rate = rate
        self._burst = burst
        self._http = http
        self._rng = rng
        self._backends: dict[str | None, retrying.RetryingBackend] = {}
        self._limiters: dict[str | None, retrying.RateLimiter] = {}
        self._clients: list[httpx.AsyncClient] = []
        self._building = asyncio.Lock()

    @property
    def default_configured(self) -> bool:
        ts = self._tailscale
        return bool(ts.tailscale_oauth_client_id and ts.tailscale_oauth_client_secret)

    def label(self, name: str | None) -> str:
        """The tailnet as events name it: the resource's name, or the default's setting."""
        return name if name is not None else self._tailscale.tailscale_tailnet

    async def backend(self, name: str | None) -> retrying.RetryingBackend:
        cached = self._backends.get(name)
        if cached is not None:
            return cached
        async with self._building:  # concurrent first requests build one backend, not two
            cached = self._backends.get(name)
            if cached is not None:
                return cached
            return await self._build(name)

    async def _build(self, name: str | None) -> retrying.RetryingBackend:
        inner = self._default() if name is None else await self._named(name)
        limiter = self._limiters.get(name)
        if limiter is None:
            limiter = retrying.RateLimiter(
                rate=self._rate, burst=self._burst, clock=self._clock, sleep=self._sleep
            )
            self._limiters[name] = limiter
        backend = retrying.RetryingBackend(
            inner, backoff=self._backoff, limiter=limiter, sleep=self._sleep, rng=self._rng
        )
        self._backends[name] = backend
        return backend

    def forget(self, name: str | None) -> None:
        """Drop a tailnet's cached backend (its credentials were refused or changed)."""
        self._backends.pop(name, None)

    def _client(self, base_url: str) -> httpx.AsyncClient:
        http = self._http(base_url)
        self._clients.append(http)
        return http

    async def close(self) -> None:
        for http in self._clients:
            await http.aclose()
        self._clients.clear()
        self._backends.clear()

    def _default(self) -> tailscale_api.TailscaleClient:
        ts = self._tailscale
        if not ts.tailscale_oauth_client_id or not ts.tailscale_oauth_client_secret:
            raise errors.ConfigurationError(MISSING_DEFAULT)
        return tailscale_api.TailscaleClient(
            self._client(ts.tailscale_api_url),
            tailnet=ts.tailscale_tailnet,
            client_id=ts.tailscale_oauth_client_id,
            client_secret=ts.tailscale_oauth_client_secret,
            clock=self._clock,
            name=ts.tailscale_tailnet,
        )

    async def _named(
        self, name: str
    ) -> tailscale_api.TailscaleClient | headscale_api.HeadscaleClient:
        api_client = await self._api_client()
        resource = await self._read_tailnet(api_client, name=name)
        spec = resource.spec
        namespace = spec.oauth_secret_namespace or self._kube.namespace
        data, allowed = await self._read_secret(
            api_client, namespace=namespace, name=spec.oauth_secret_name, tailnet=name
        )
        where = f"TailscaleTailnet {name}: Secret {namespace}/{spec.oauth_secret_name}"
        if name not in allowed:
            # Whoever may create a TailscaleTailnet must not be able to send tailwire's
            # credentials to an apiURL of their choosing: the Secret names who may use it.
            raise errors.ConfigurationError(
                f"{where} is not for this tailnet: annotate it "
                f"{tailscaletailnet.SECRET_TAILNETS_ANNOTATION}: {name} (a comma-separated "
                "list of the TailscaleTailnets that may use it)"
            )
        if spec.backend == "headscale":
            api_key = data.get("api_key")
            if not api_key:
                raise errors.ConfigurationError(f"{where}: missing key api_key")
            return headscale_api.HeadscaleClient(
                self._client(spec.api_url),
                api_key=pydantic.SecretStr(api_key),
                user=spec.headscale.user if spec.headscale else None,
                clock=self._clock,
                name=name,
            )
        client_id, client_secret = data.get("client_id"), data.get("client_secret")
        if not client_id or not client_secret:
            raise errors.ConfigurationError(f"{where}: missing key client_id or client_secret")
        return tailscale_api.TailscaleClient(
            self._client(spec.api_url),
            tailnet=spec.tailnet,
            client_id=client_id,
            client_secret=pydantic.SecretStr(client_secret),
            clock=self._clock,
            name=name,
        )

    async def _read_tailnet(
        self, api_client: client.ApiClient, *, name: str
    ) -> tailscaletailnet.TailscaleTailnet:
        custom = client.CustomObjectsApi(api_client)
        try:
            raw = await custom.get_cluster_custom_object(
                tailscaletailnet.GROUP, tailscaletailnet.VERSION, tailscaletailnet.PLURAL, name
            )
        except ApiException as exc:
            if exc.status == 404:
                raise errors.ConfigurationError(f"TailscaleTailnet {name} not found") from None
            raise failures.convert(exc, what=f"read TailscaleTailnet {name}") from None
        try:
            return tailscaletailnet.TailscaleTailnet.model_validate(raw)
        except pydantic.ValidationError as exc:
            raise errors.ConfigurationError(f"TailscaleTailnet {name}: invalid: {exc}") from None

    async def _read_secret(
        self, api_client: client.ApiClient, *, namespace: str, name: str, tailnet: str
    ) -> tuple[dict[str, str], frozenset[str]]:
        """The Secret's data, and the TailscaleTailnets its annotation lets use it."""
        core = client.CoreV1Api(api_client)
        where = f"TailscaleTailnet {tailnet}: Secret {namespace}/{name}"
        try:
            secret = await core.read_namespaced_secret(name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                raise errors.ConfigurationError(f"{where} not found") from None
            if exc.status == 403 and namespace != self._kube.namespace:
                # deploy/base lets the keyminter read Secrets in its own namespace only.
                raise errors.ConfigurationError(
                    f"{where}: the keyminter may not read it; grant its ServiceAccount get on "
                    f"this Secret with a Role and RoleBinding in {namespace} (see "
                    "examples/homelab-stack.yaml), or move the Secret to "
                    f"{self._kube.namespace}"
                ) from None
            raise failures.convert(exc, what=f"read {where}") from None
        decoded: dict[str, str] = {}
        for key, value in (secret.data or {}).items():
            try:
                decoded[key] = base64.b64decode(value).decode().strip()
            except (binascii.Error, UnicodeDecodeError):
                raise errors.ConfigurationError(f"{where}: key {key} is not base64") from None
        annotations = (secret.metadata.annotations if secret.metadata else None) or {}
        return decoded, tailscaletailnet.secret_tailnets(annotations)
