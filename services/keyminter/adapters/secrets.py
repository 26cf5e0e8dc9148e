"""The owners' Secrets: where a minted key lives, and the keyminter's only durable state.

A Secret holds the key under `AUTHKEY_SECRET_KEY`; its annotations say which key it is
(id, issue and expiry times, tailnet, tags) and which request it answers, so a restarted
keyminter renews from Secrets alone. Creation is create-or-409 and replacement carries the
`resourceVersion` it read, so two writers never both win. Kubernetes errors leave as
`tailwire.shared.errors`. This module must not log or raise the key, and never returns it:
readers get `domain.StoredKey`, which has no field for it.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException
from pydantic import SecretStr, ValidationError

from tailwire.services.keyminter import domain
from tailwire.shared import errors
from tailwire.shared.events import keys
from tailwire.shared.k8s import failures, labels, names

COMPONENT = "keyminter"
# Annotation keys on the Secrets the keyminter writes (all under tailwire.dev/).
KEY_ID = f"{labels.DOMAIN}/key-id"
ISSUED_AT = f"{labels.DOMAIN}/key-issued-at"
EXPIRES_AT = f"{labels.DOMAIN}/key-expires-at"
KEY_TAILNET = f"{labels.DOMAIN}/key-tailnet"
KEY_TAGS = f"{labels.DOMAIN}/key-tags"
TAG_HISTORY = f"{labels.DOMAIN}/tag-history"  # every tag the owner's keys ever carried
KEY_REQUEST = f"{labels.DOMAIN}/key-request"  # the KeyRequest it answers (JSON, no secret)
# A keyminter about to mint for this owner: who, and since when (see `minting`).
MINTING_BY = f"{labels.DOMAIN}/minting-by"
MINTING_SINCE = f"{labels.DOMAIN}/minting-since"

ApiClientFactory = Callable[[], Awaitable[client.ApiClient]]


@dataclasses.dataclass(frozen=True, kw_only=True)
class Claim:
    """A keyminter's note on a Secret that it is minting for the owner right now."""

    holder: str
    since: datetime.datetime


@dataclasses.dataclass(frozen=True, kw_only=True)
class Current:
    """A Secret as read: what key it holds, who is minting, the version to replace it at.

    `annotations` and `data` are kept only to carry them over into a claim; `data` holds
    the key (base64) and is never shown.
    """

    stored: domain.StoredKey | None
    resource_version: str | None
    claim: Claim | None = None
    annotations: dict[str, str] = dataclasses.field(default_factory=dict, repr=False)
    data: dict[str, str] = dataclasses.field(default_factory=dict, repr=False)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Managed:
    """A Secret the keyminter wrote, with the request that produced it (for renewal)."""

    namespace: str
    name: str
    stored: domain.StoredKey
    request: keys.KeyRequest


def _time(value: str | None) -> datetime.datetime | None:
    if not value:
        return None
    try:
        moment = datetime.datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def _stored_from(
    meta_annotations: dict[str, str] | None, data: dict[str, str] | None
) -> domain.StoredKey | None:
    annotations = meta_annotations or {}
    issued, expires = _time(annotations.get(ISSUED_AT)), _time(annotations.get(EXPIRES_AT))
    key_id = annotations.get(KEY_ID)
    if not key_id or issued is None or expires is None:
        return None  # not ours, or damaged: treat as no key and mint over it
    return domain.StoredKey(
        key_id=key_id,
        tailnet=annotations.get(KEY_TAILNET, ""),
        tags=tuple(t for t in annotations.get(KEY_TAGS, "").split(",") if t),
        issued_at=issued,
        expires_at=expires,
        has_key=bool((data or {}).get(names.AUTHKEY_SECRET_KEY)),
        tag_history=tuple(t for t in annotations.get(TAG_HISTORY, "").split(",") if t),
        options=_options(annotations.get(KEY_REQUEST)),
    )


def _options(raw_request: str | None) -> domain.KeyOptions | None:
    """The key's capabilities, from the request it answered (None if unreadable)."""
    if not raw_request:
        return None
    try:
        request = keys.KeyRequest.model_validate_json(raw_request)
    except ValidationError:
        return None
    return domain.KeyOptions.of(request)


def _claim_from(annotations: dict[str, str]) -> Claim | None:
    holder, since = annotations.get(MINTING_BY), _time(annotations.get(MINTING_SINCE))
    return Claim(holder=holder, since=since) if holder and since is not None else None


def _metadata(*, request: keys.KeyRequest, tailnet: str) -> dict[str, Any]:
    """Name, labels and owner reference of the Secret for `request`."""
    owner = request.owner
    metadata: dict[str, Any] = {
        "name": request.secret_name,
        "namespace": request.secret_namespace,
        "labels": {
            **labels.managed(component=COMPONENT),
            labels.OWNER_KIND: owner.kind,
            labels.OWNER_NAME: labels.label_value(owner.name),
            **({labels.OWNER_NAMESPACE: owner.namespace} if owner.namespace else {}),
            **({labels.TAILNET: tailnet} if _label_value_ok(tailnet) else {}),
        },
    }
    # An owner reference cannot cross namespaces: a cluster-scoped owner (EgressGroup) or
    # one in the Secret's namespace owns it; otherwise the labels alone name the owner.
    if owner.namespace in (None, request.secret_namespace):
        metadata["ownerReferences"] = [
            {
                "apiVersion": owner.api_version,
                "kind": owner.kind,
                "name": owner.name,
                "uid": owner.uid,
                "blockOwnerDeletion": False,
                "controller": False,
            }
        ]
    return metadata


def _secret(metadata: dict[str, Any], data: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata,
        "type": "Opaque",
        "data": data,
    }


def claim_body(
    *,
    request: keys.KeyRequest,
    tailnet: str,
    current: Current,
    holder: str,
    since: datetime.datetime,
) -> dict[str, Any]:
    """The Secret as it is, plus a claim: created empty if there is none yet."""
    metadata = _metadata(request=request, tailnet=tailnet)
    metadata["annotations"] = {
        **current.annotations,
        MINTING_BY: holder,
        MINTING_SINCE: since.isoformat(),
    }
    if current.resource_version is not None:
        metadata["resourceVersion"] = current.resource_version
    return _secret(metadata, dict(current.data))


def release_body(
    *, request: keys.KeyRequest, tailnet: str, current: Current, version: str | None
) -> dict[str, Any]:
    """The Secret as it was before our claim, at the version our claim left."""
    metadata = _metadata(request=request, tailnet=tailnet)
    metadata["annotations"] = {
        k: v for k, v in current.annotations.items() if k not in (MINTING_BY, MINTING_SINCE)
    }
    metadata["resourceVersion"] = version
    return _secret(metadata, dict(current.data))


def secret_body(
    *,
    request: keys.KeyRequest,
    tailnet: str,
    key_id: str,
    secret: SecretStr,
    issued_at: datetime.datetime,
    expires_at: datetime.datetime,
    resource_version: str | None,
    tag_history: tuple[str, ...] = (),
) -> dict[str, Any]:
    """The Secret holding a new key for `request` (any claim is dropped)."""
    metadata = _metadata(request=request, tailnet=tailnet)
    metadata["annotations"] = {
        KEY_ID: key_id,
        ISSUED_AT: issued_at.isoformat(),
        EXPIRES_AT: expires_at.isoformat(),
        KEY_TAILNET: tailnet,
        KEY_TAGS: ",".join(request.tags),
        TAG_HISTORY: ",".join(tag_history or request.tags),
        KEY_REQUEST: request.model_copy(update={"revoke": False}).model_dump_json(),
    }
    if resource_version is not None:
        metadata["resourceVersion"] = resource_version
    value = base64.b64encode(secret.get_secret_value().encode()).decode("ascii")
    return _secret(metadata, {names.AUTHKEY_SECRET_KEY: value})


def _label_value_ok(value: str) -> bool:
    # Kubernetes refuses `-` (the Tailscale API's "default tailnet"): no label then.
    return bool(value) and labels.label_value(value) == value


class SecretStore:
    """Reads and writes the owners' Secrets through the Kubernetes API."""

    def __init__(self, api_client: ApiClientFactory, *, namespace: str | None = None) -> None:
        """`namespace` bounds the renewal sweep (and so the RBAC it needs) to one namespace,
        where the renderer asks for its Secrets; None sweeps every namespace."""
        self._factory = api_client
        self._namespace = namespace
        self._core: client.CoreV1Api | None = None

    async def _api(self) -> client.CoreV1Api:
        if self._core is None:
            self._core = client.CoreV1Api(await self._factory())
        return self._core

    async def close(self) -> None:
        """Forget the API handle (the ApiClient belongs to whoever made the factory)."""
        self._core = None

    async def read(self, *, namespace: str, name: str) -> Current:
        what = f"read Secret {namespace}/{name}"
        api = await self._api()
        try:
            secret = await api.read_namespaced_secret(name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return Current(stored=None, resource_version=None)
            raise failures.convert(exc, what=what) from None
        except aiohttp.ClientError as exc:
            raise errors.TransientBackendError(f"{what}: {type(exc).__name__}") from None
        annotations = dict(secret.metadata.annotations or {})
        return Current(
            stored=_stored_from(annotations, secret.data),
            resource_version=secret.metadata.resource_version,
            claim=_claim_from(annotations),
            annotations=annotations,
            data=dict(secret.data or {}),
        )

    async def write(self, body: dict[str, Any]) -> str | None:
        """Create the Secret, or replace it at the `resourceVersion` in `body`; 409 -> Conflict.

        Returns the new resourceVersion."""
        meta = body["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        api = await self._api()
        wire: Any = body  # the client serialises plain dicts as they are
        try:
            if meta.get("resourceVersion") is None:
                written = await api.create_namespaced_secret(namespace, wire)
            else:
                written = await api.replace_namespaced_secret(name, namespace, wire)
        except ApiException as exc:
            raise failures.convert(exc, what=f"write Secret {namespace}/{name}") from None
        except aiohttp.ClientError as exc:
            what = f"write Secret {namespace}/{name}"
            raise errors.TransientBackendError(f"{what}: {type(exc).__name__}") from None
        version: str | None = written.metadata.resource_version
        return version

    async def delete(self, *, namespace: str, name: str) -> None:
        api = await self._api()
        try:
            await api.delete_namespaced_secret(name, namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise failures.convert(exc, what=f"delete Secret {namespace}/{name}") from None
        except aiohttp.ClientError as exc:
            what = f"delete Secret {namespace}/{name}"
            raise errors.TransientBackendError(f"{what}: {type(exc).__name__}") from None

    async def list_managed(self) -> list[Managed]:
        """Every Secret the keyminter wrote (in its namespace, or all), with its request."""
        selector = f"{labels.MANAGED_BY}={labels.MANAGED_BY_VALUE},{labels.COMPONENT}={COMPONENT}"
        api = await self._api()
        try:
            if self._namespace:
                listing = await api.list_namespaced_secret(self._namespace, label_selector=selector)
            else:
                listing = await api.list_secret_for_all_namespaces(label_selector=selector)
        except ApiException as exc:
            raise failures.convert(exc, what="list keyminter Secrets") from None
        except aiohttp.ClientError as exc:
            raise errors.TransientBackendError(f"list Secrets: {type(exc).__name__}") from None
        found = []
        for secret in listing.items:
            annotations = secret.metadata.annotations or {}
            stored = _stored_from(annotations, secret.data)
            raw_request = annotations.get(KEY_REQUEST)
            if stored is None or not raw_request:
                continue
            try:
                request = keys.KeyRequest.model_validate_json(raw_request)
            except ValidationError:
                continue
            found.append(
                Managed(
                    namespace=secret.metadata.namespace,
                    name=secret.metadata.name,
                    stored=stored,
                    request=request,
                )
            )
        return found
