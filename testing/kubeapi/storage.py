"""The emulated etcd plus the generic registry rules of kube-apiserver.

Responsible for: the objects of every served resource; the one cluster-wide
``resourceVersion`` counter bumped on every write; ``uid``,
``creationTimestamp``; ``generation`` where the resource keeps one (bumped
only when something other than metadata, or status where there is a status
subresource, changes, and when deletion starts); status
isolation between the main resource and ``/status``; optimistic concurrency
(stale ``resourceVersion`` -> 409); no-op writes that change nothing and
emit nothing; finalizers (DELETE sets ``deletionTimestamp``, the object goes
when the last finalizer does); and handing each committed change to the
:mod:`.journal` (history, watches) and to the commit hooks (CRDs).

Must not: speak HTTP, parse selectors from strings, or block: every read and
write is synchronous, so a snapshot plus a subscription is atomic on the loop.
Writes made by tests directly (``client=False``) skip admission-like checks
(namespace must exist, no status on create, status isolation) but follow
every other storage rule.
"""

from __future__ import annotations

import copy
import datetime
import random
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from . import journal, managedfields, manifests, patches, resources, selectors, statuses

JSON = dict[str, Any]
Clock = Callable[[], datetime.datetime]


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class Store:
    def __init__(
        self,
        *,
        catalog: resources.Catalog,
        history_size: int = 1000,
        clock: Clock = utcnow,
    ) -> None:
        self.catalog = catalog
        self.journal = journal.Journal(size=history_size)
        self.clock = clock
        self.on_commit: list[Callable[[journal.Event], None]] = []
        self._objects: dict[str, dict[tuple[str, str], JSON]] = {}
        self._rv = 0

    @property
    def resource_version(self) -> int:
        return self._rv

    def timestamp(self) -> str:
        return self.clock().astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    # --- reading -------------------------------------------------------------------------

    def _bucket(self, spec: resources.ResourceSpec) -> dict[tuple[str, str], JSON]:
        return self._objects.setdefault(spec.key, {})

    def _live(self, spec: resources.ResourceSpec, *, namespace: str | None, name: str) -> JSON:
        obj = self._bucket(spec).get((namespace or "", name))
        if obj is None:
            raise statuses.not_found(spec=spec, name=name)
        return obj

    def get(self, spec: resources.ResourceSpec, *, namespace: str | None, name: str) -> JSON:
        return copy.deepcopy(self._live(spec, namespace=namespace, name=name))

    def select(
        self,
        spec: resources.ResourceSpec,
        *,
        namespace: str | None = None,
        labels: selectors.LabelSelector | None = None,
        fields: selectors.FieldSelector | None = None,
    ) -> list[JSON]:
        """Objects in key order (namespace, name), as etcd returns them."""
        bucket = self._bucket(spec)
        return [
            copy.deepcopy(obj)
            for (ns, _), obj in sorted(bucket.items())
            if namespace is None or ns == namespace
            if labels is None or labels.matches(obj)
            if fields is None or fields.matches(obj)
        ]

    # --- writing -------------------------------------------------------------------------

    def _commit(
        self, spec: resources.ResourceSpec, type_: str, new: JSON, old: JSON | None
    ) -> JSON:
        self._rv += 1
        new["metadata"]["resourceVersion"] = str(self._rv)
        key = (new["metadata"].get("namespace", ""), new["metadata"]["name"])
        if type_ == "DELETED":
            self._bucket(spec).pop(key, None)
        else:
            self._bucket(spec)[key] = new
        event = journal.Event(type_, self._rv, spec, copy.deepcopy(new), old)
        self.journal.append(event)
        for hook in list(self.on_commit):
            hook(event)
        return copy.deepcopy(new)

    def create(
        self,
        spec: resources.ResourceSpec,
        body: Any,
        *,
        namespace: str | None = None,
        manager: str,
        client: bool = True,
        managed: list[JSON] | None = None,
    ) -> JSON:
        obj = manifests.normalize(spec, body, namespace=namespace)
        meta = obj["metadata"]
        if client and meta.get("resourceVersion"):
            raise statuses.internal("resourceVersion should not be set on objects to be created")
        if not meta.get("name") and meta.get("generateName"):
            alphabet = "bcdfghjklmnpqrstvwxz2456789"  # the server's: no vowels, no look-alikes
            meta["name"] = meta["generateName"] + "".join(random.choices(alphabet, k=5))
        if not meta.get("name"):
            raise statuses.invalid(
                spec=spec,
                name="",
                field="metadata.name",
                message="Required value: name or generateName is required",
            )
        if client and spec.namespaced and not self._namespace_exists(meta["namespace"]):
            raise statuses.namespace_not_found(meta["namespace"])
        if (meta.get("namespace", ""), meta["name"]) in self._bucket(spec):
            raise statuses.already_exists(spec=spec, name=meta["name"])
        if client and spec.status:
            obj.pop("status", None)  # the status is the controllers' to write, via /status
        manifests.apply_defaults(spec, obj)
        for server_owned in (
            "resourceVersion",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "selfLink",
        ):
            meta.pop(server_owned, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = self.timestamp()
        if spec.generation:
            meta["generation"] = 1
        else:
            meta.pop("generation", None)
        meta["managedFields"] = (
            managed
            if managed is not None
            else managedfields.record_update(
                old=None,
                new=obj,
                manager=manager,
                subresource=None,
                api_version=spec.api_version,
                now=self.timestamp(),
            )
        )
        return self._commit(spec, "ADDED", obj, None)

    def _namespace_exists(self, namespace: str) -> bool:
        namespaces = self.catalog.lookup(group="", version="v1", plural="namespaces")
        return namespaces is None or ("", namespace) in self._bucket(namespaces)

    def replace(
        self,
        spec: resources.ResourceSpec,
        body: Any,
        *,
        namespace: str | None,
        name: str,
        subresource: str | None = None,
        manager: str,
    ) -> JSON:
        current = self._live(spec, namespace=namespace, name=name)
        new = manifests.normalize(spec, body, namespace=namespace)
        manifests.check_name(new, name)
        rv = new["metadata"].get("resourceVersion")
        if rv and rv != current["metadata"]["resourceVersion"]:
            raise statuses.modified(spec=spec, name=name)
        return self._update(spec, current, new, subresource=subresource, manager=manager)

    def patch(
        self,
        spec: resources.ResourceSpec,
        body: Any,
        *,
        namespace: str | None,
        name: str,
        patch_type: str,  # "merge" | "strategic" | "json" | "apply"
        subresource: str | None = None,
        manager: str,
        force: bool = False,
        client: bool = True,
    ) -> tuple[JSON, bool]:
        """Returns the new state and whether it was created (server-side apply of a new object)."""
        if patch_type == "apply":
            return self._apply(
                spec,
                body,
                namespace=namespace,
                name=name,
                subresource=subresource,
                manager=manager,
                force=force,
            )
        current = self._live(spec, namespace=namespace, name=name)
        if patch_type == "json":
            patched = patches.apply_json_patch(current, body)
        elif isinstance(body, Mapping):
            patched = patches.merge(current, body)
        else:
            raise statuses.bad_request("a merge patch must be a JSON object")
        if (
            patched.get("metadata", {}).get("resourceVersion")
            != current["metadata"]["resourceVersion"]
        ):
            raise statuses.modified(
                spec=spec, name=name
            )  # a patch may carry an RV as a precondition
        return self._update(
            spec, current, patched, subresource=subresource, manager=manager, client=client
        ), False

    def _apply(
        self,
        spec: resources.ResourceSpec,
        body: Any,
        *,
        namespace: str | None,
        name: str,
        subresource: str | None,
        manager: str,
        force: bool,
    ) -> tuple[JSON, bool]:
        config = manifests.normalize(spec, body, namespace=namespace)
        manifests.check_name(config, name)
        live = self._bucket(spec).get((namespace or "", name))
        if live is None and subresource:
            raise statuses.not_found(spec=spec, name=name)
        rv = config["metadata"].pop("resourceVersion", None)
        if live is not None and rv and rv != live["metadata"]["resourceVersion"]:
            raise statuses.modified(spec=spec, name=name)
        try:
            merged = managedfields.apply(
                live=live,
                config=config,
                manager=manager,
                force=force,
                subresource=subresource,
                api_version=spec.api_version,
                now=self.timestamp(),
            )
        except managedfields.ApplyConflictError as e:
            raise statuses.apply_conflicts(owners=e.owners) from None
        managed = merged["metadata"]["managedFields"]
        if live is None:
            return self.create(
                spec, merged, namespace=namespace, manager=manager, managed=managed
            ), True
        return self._update(
            spec, live, merged, subresource=subresource, manager=manager, managed=managed
        ), False

    def _update(
        self,
        spec: resources.ResourceSpec,
        current: JSON,
        desired: JSON,
        *,
        subresource: str | None,
        manager: str,
        managed: list[JSON] | None = None,
        client: bool = True,
    ) -> JSON:
        if subresource == "status":
            new = copy.deepcopy(current)
            new["status"] = copy.deepcopy(desired.get("status"))
            if new["status"] is None:
                del new["status"]
        else:
            new = copy.deepcopy(desired)
            new["apiVersion"], new["kind"] = spec.api_version, spec.kind
            meta, live_meta = new.setdefault("metadata", {}), current["metadata"]
            for owned in (
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
            ):
                if owned in live_meta:
                    meta[owned] = live_meta[owned]
                else:
                    meta.pop(owned, None)
            meta["name"] = live_meta["name"]
            if "namespace" in live_meta:
                meta["namespace"] = live_meta["namespace"]
            if spec.status and client:  # writes to the main resource cannot touch the status
                if "status" in current:
                    new["status"] = copy.deepcopy(current["status"])
                else:
                    new.pop("status", None)
            added = set(meta.get("finalizers") or []) - set(live_meta.get("finalizers") or [])
            if live_meta.get("deletionTimestamp") and added:
                raise statuses.invalid(
                    spec=spec,
                    name=live_meta["name"],
                    field="metadata.finalizers",
                    message="Forbidden: no new finalizers can be added"
                    " if the object is being deleted",
                )
        if spec.generation and manifests.content(new, spec) != manifests.content(current, spec):
            new["metadata"]["generation"] = current["metadata"].get("generation", 0) + 1
        new["metadata"]["managedFields"] = (
            managed
            if managed is not None
            else managedfields.record_update(
                old=current,
                new=new,
                manager=manager,
                subresource=subresource,
                api_version=spec.api_version,
                now=self.timestamp(),
            )
        )
        if manifests.comparable(new) == manifests.comparable(current):
            return copy.deepcopy(current)  # a no-op write: no new resourceVersion, no event
        updated = self._commit(spec, "MODIFIED", new, copy.deepcopy(current))
        if updated["metadata"].get("deletionTimestamp") and not updated["metadata"].get(
            "finalizers"
        ):
            # The last finalizer went: the update is stored (MODIFIED), then the delete follows.
            self._commit(spec, "DELETED", copy.deepcopy(updated), copy.deepcopy(updated))
        return updated

    def delete(
        self,
        spec: resources.ResourceSpec,
        *,
        namespace: str | None,
        name: str,
        preconditions: Mapping[str, Any] | None = None,
    ) -> JSON:
        """Delete, or start deleting while finalizers hold it; returns what the server answers."""
        current = self._live(spec, namespace=namespace, name=name)
        meta = current["metadata"]
        for field, label in (("uid", "UID"), ("resourceVersion", "ResourceVersion")):
            expected = (preconditions or {}).get(field)
            if expected and expected != meta.get(field):
                why = (
                    f"Precondition failed: {label} in precondition: {expected},"
                    f" {label} in object meta: {meta.get(field)}"
                )
                raise statuses.conflict(spec=spec, name=name, why=why)
        if meta.get("finalizers"):
            if meta.get("deletionTimestamp"):
                return copy.deepcopy(current)  # already terminating: nothing changes
            new = copy.deepcopy(current)
            new["metadata"]["deletionTimestamp"] = self.timestamp()
            new["metadata"]["deletionGracePeriodSeconds"] = 0
            if spec.generation:
                new["metadata"]["generation"] = meta.get("generation", 0) + 1
            return self._commit(spec, "MODIFIED", new, copy.deepcopy(current))
        deleted = self._commit(spec, "DELETED", copy.deepcopy(current), copy.deepcopy(current))
        if spec.delete_returns_object:
            return deleted
        return statuses.success(spec=spec, name=name, uid=meta["uid"])

    # --- watching ------------------------------------------------------------------------

    def subscribe(
        self, spec: resources.ResourceSpec, *, since: int | None
    ) -> tuple[list[journal.Event], journal.Subscription]:
        """The events to send first and the subscription for what follows, atomically.

        ``since`` None or 0: synthetic ADDED for every current object (the real server's
        "most recent" and "any" semantics). Otherwise: every retained event after it, or 410.
        """
        self.journal.check_start(spec, since)
        if since:
            initial = self.journal.after(spec, since)
        else:
            initial = [
                journal.Event(
                    "ADDED", int(obj["metadata"]["resourceVersion"]), spec, copy.deepcopy(obj), None
                )
                for _, obj in sorted(self._bucket(spec).items())
            ]
        return initial, self.journal.subscribe(spec)

    def expire_history(self) -> None:
        """Compact: forget every event so far; watches from older versions now get 410."""
        self.journal.expire(up_to=self._rv)

    def drop_resource(self, spec: resources.ResourceSpec) -> None:
        """What removing a CRD does: DELETED for every object, then the watches end."""
        for obj in list(self._bucket(spec).values()):
            self._commit(spec, "DELETED", copy.deepcopy(obj), copy.deepcopy(obj))
        self.journal.signal(journal.Disconnect, spec=spec)
        self._objects.pop(spec.key, None)
