"""Minting, renewing and revoking one owner's key: the keyminter's use cases.

`Minter.ensure_key` answers a key request level-triggered: the owner's Secret is the source
of truth; a key that is still good is reused, otherwise keys this owner left behind (found
by the description marker, e.g. minted just before a crash) are deleted, one key is minted
and written, and the replaced key is deleted. A per-owner lock serialises work on one owner
inside the process. Between processes, a keyminter first writes a claim on the Secret
(create-or-409, replace at resourceVersion): only the claim holder sweeps and mints, others
hand the request back until the key is there, and a claim older than `claim_seconds` is
taken over (its holder died); the holder's final write at the claimed version fails if it
was taken over, and it then deletes the key it minted. `renew_due` renews from Secrets
alone, so it works after a restart. `revoke` deletes the owner's keys, every device it
created and its Secret.

This module decides nothing a pure function could (see `domain`) and talks to the outside
only through the adapters; it never logs, returns or raises a key.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
import socket
import uuid
from collections.abc import AsyncIterator

from tailwire.services.keyminter import domain
from tailwire.services.keyminter.adapters import backends, secrets, tailnets, timing
from tailwire.shared import errors
from tailwire.shared.events import keys

log = logging.getLogger(__name__)

# How often a lost Secret race is retried before the request goes back to the bus.
MAX_WRITE_RACES = 3


@dataclasses.dataclass(frozen=True, kw_only=True)
class Policy:
    renewal_fraction: float = 0.8
    key_expiry_seconds: int = 90 * 24 * 3600
    # How long another keyminter's minting claim is respected before it counts as dead.
    claim_seconds: float = 120.0


class Minter:
    """The keyminter's work on owners' keys, over injected adapters and a clock."""

    def __init__(
        self,
        *,
        store: secrets.SecretStore,
        tailnets: tailnets.Tailnets,
        clock: timing.Clock,
        policy: Policy,
        holder: str | None = None,
    ) -> None:
        # Who this keyminter is in minting claims: unique per process, so a restarted one
        # does not mistake its predecessor's claim for its own.
        self.holder = holder or f"{socket.gethostname()[:40]}-{uuid.uuid4().hex[:12]}"
        self.store = store
        self.tailnets = tailnets
        self.clock = clock
        self.policy = policy
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: collections.Counter[str] = collections.Counter()

    @contextlib.asynccontextmanager
    async def _lock(self, request: keys.KeyRequest) -> AsyncIterator[None]:
        """One owner at a time in this process; the lock is dropped when nobody needs it."""
        uid = request.owner.uid
        lock = self._locks.setdefault(uid, asyncio.Lock())
        self._users[uid] += 1
        try:
            async with lock:
                yield
        finally:
            self._users[uid] -= 1
            if self._users[uid] == 0:
                del self._users[uid]
                del self._locks[uid]

    async def ensure_key(self, request: keys.KeyRequest) -> keys.KeyReady:
        """A valid key for the request's owner is in its Secret: reuse it or mint one."""
        async with self._lock(request):
            for _ in range(MAX_WRITE_RACES):
                try:
                    return await self._ensure_once(request)
                except errors.Conflict:
                    log.info("%s: Secret changed while minting; reading it again", _who(request))
            raise errors.TransientBackendError(
                f"Secret {request.secret_namespace}/{request.secret_name} keeps changing "
                "under the keyminter",
                retry_after=5.0,
            )

    async def _ensure_once(self, request: keys.KeyRequest) -> keys.KeyReady:
        label = self.tailnets.label(request.tailnet)
        # The backend first: a tailnet with no credentials fails before anything is read.
        backend = await self.tailnets.backend(request.tailnet)
        current = await self.store.read(
            namespace=request.secret_namespace, name=request.secret_name
        )
        stored = current.stored
        if domain.is_reusable(
            stored,
            tailnet=label,
            tags=request.tags,
            now=self.clock.now(),
            fraction=self.policy.renewal_fraction,
            options=domain.KeyOptions.of(request),
        ):
            assert stored is not None
            return _ready(request, tailnet=label, key_id=stored.key_id, stored=stored)
        claimed_version = await self._claim(request, tailnet=label, current=current)
        try:
            minted = await self._mint(request, backend=backend, keep=_key_id(stored))
        except Exception:
            await self._release(request, tailnet=label, current=current, version=claimed_version)
            raise
        body = secrets.secret_body(
            request=request,
            tailnet=label,
            key_id=minted.key_id,
            secret=minted.secret,
            issued_at=self.clock.now(),
            expires_at=minted.expires_at,
            resource_version=claimed_version,
            tag_history=domain.tag_history(stored, tags=request.tags),
        )
        try:
            await self.store.write(body)
        except errors.BackendError:
            # Not written (lost the claim to a takeover, or the API failed): the key must
            # not outlive this attempt. If this deletion fails too, or we crash right here,
            # the marker sweep of whoever mints next removes it.
            try:
                await backend.delete_key(minted.key_id)
            except errors.BackendError:
                log.warning("%s: could not delete unwritten key %s", _who(request), minted.key_id)
            raise
        keep = _key_id(stored)
        if keep is not None and keep != minted.key_id:
            try:
                await backend.delete_key(keep)
            except errors.BackendError as exc:
                # The next request's sweep deletes it (it carries the marker).
                log.warning("%s: could not delete replaced key %s: %s", _who(request), keep, exc)
        log.info(
            "%s: minted key %s in %s, expires %s",
            _who(request),
            minted.key_id,
            label,
            minted.expires_at.isoformat(),
        )
        return keys.KeyReady(
            owner=request.owner,
            tailnet=label,
            secret_name=request.secret_name,
            secret_namespace=request.secret_namespace,
            key_id=minted.key_id,
            expires_at=minted.expires_at,
            tags=request.tags,
        )

    async def _claim(
        self, request: keys.KeyRequest, *, tailnet: str, current: secrets.Current
    ) -> str | None:
        """Note on the Secret that this keyminter mints for the owner now; returns the
        Secret's version after the note. Another keyminter's fresh claim wins: the request
        comes back later. A claim older than the grace belongs to a keyminter that died."""
        now = self.clock.now()
        claim = current.claim
        if claim is not None and claim.holder != self.holder:
            age = (now - claim.since).total_seconds()
            if age < self.policy.claim_seconds:
                raise errors.TransientBackendError(
                    f"another keyminter is minting for {_who(request)} (for {age:.0f}s)",
                    retry_after=self.policy.claim_seconds - age + 1.0,
                )
            log.warning("%s: taking over a claim %.0fs old", _who(request), age)
        body = secrets.claim_body(
            request=request, tailnet=tailnet, current=current, holder=self.holder, since=now
        )
        return await self.store.write(body)  # Conflict: someone else claimed first

    async def _mint(
        self, request: keys.KeyRequest, *, backend: backends.Backend, keep: str | None
    ) -> backends.MintedKey:
        """Delete this owner's leftover keys (marker, not in its Secret), then mint one."""
        marker = domain.key_marker(request.owner.uid)
        for orphan in domain.orphaned_keys(await backend.list_keys(), marker=marker, keep=keep):
            log.warning(
                "%s: deleting key %s left over from an earlier try", _who(request), orphan.id
            )
            await backend.delete_key(orphan.id)
        return await backend.mint_key(
            tags=request.tags,
            reusable=request.reusable,
            ephemeral=request.ephemeral,
            preauthorized=request.preauthorized,
            expiry_seconds=self.policy.key_expiry_seconds,
            description=marker,
        )

    async def _release(
        self,
        request: keys.KeyRequest,
        *,
        tailnet: str,
        current: secrets.Current,
        version: str | None,
    ) -> None:
        """Best effort: take our claim back off the Secret (or remove the empty one we made)."""
        try:
            if current.resource_version is None:
                await self.store.delete(
                    namespace=request.secret_namespace, name=request.secret_name
                )
            else:
                await self.store.write(
                    secrets.release_body(
                        request=request, tailnet=tailnet, current=current, version=version
                    )
                )
        except errors.BackendError as exc:
            log.warning("%s: could not release the minting claim: %s", _who(request), exc)

    async def revoke(self, request: keys.KeyRequest) -> keys.KeyRevoked:
        """Delete the owner's keys, every device it created, and its Secret."""
        async with self._lock(request):
            label = self.tailnets.label(request.tailnet)
            backend = await self.tailnets.backend(request.tailnet)
            current = await self.store.read(
                namespace=request.secret_namespace, name=request.secret_name
            )
            marker = domain.key_marker(request.owner.uid)
            key_ids = {
                k.id
                for k in domain.orphaned_keys(await backend.list_keys(), marker=marker, keep=None)
            }
            if current.stored is not None:
                key_ids.add(current.stored.key_id)
            for key_id in sorted(key_ids):
                await backend.delete_key(key_id)
            # Devices keep the tags of the key they joined with: every tag the owner's keys
            # ever carried counts, in case its tags changed since.
            devices = domain.owned_devices(
                await backend.list_devices(),
                hostname_prefix=request.hostname_prefix,
                tags=domain.tag_history(current.stored, tags=request.tags),
                nested_prefixes=request.nested_prefixes,
            )
            for device in devices:
                await backend.delete_device(device.id)
            await self.store.delete(namespace=request.secret_namespace, name=request.secret_name)
            log.info(
                "%s: revoked %d key(s), removed %d device(s)",
                _who(request),
                len(key_ids),
                len(devices),
            )
            return keys.KeyRevoked(
                owner=request.owner,
                tailnet=label,
                key_ids=tuple(sorted(key_ids)),
                devices_removed=tuple(sorted(d.hostname for d in devices)),
            )

    async def due_for_renewal(self) -> list[keys.KeyRequest]:
        """Requests whose Secret holds a key past the renewal point (from Secrets alone)."""
        now = self.clock.now()
        return [
            managed.request
            for managed in await self.store.list_managed()
            if now >= managed.stored.renew_at(fraction=self.policy.renewal_fraction)
        ]


def _ready(
    request: keys.KeyRequest, *, tailnet: str, key_id: str, stored: domain.StoredKey
) -> keys.KeyReady:
    return keys.KeyReady(
        owner=request.owner,
        tailnet=tailnet,
        secret_name=request.secret_name,
        secret_namespace=request.secret_namespace,
        key_id=key_id,
        expires_at=stored.expires_at,
        tags=request.tags,
    )


def _key_id(stored: domain.StoredKey | None) -> str | None:
    return stored.key_id if stored is not None else None


def _who(request: keys.KeyRequest) -> str:
    owner = request.owner
    return (
        f"{owner.kind}/{owner.namespace}/{owner.name}"
        if owner.namespace
        else (f"{owner.kind}/{owner.name}")
    )
