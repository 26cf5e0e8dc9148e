"""Rules about the shape of a manifest, as the generic registry applies them.

Responsible for: normalising an incoming body (apiVersion/kind filled from
the URL, contradictions refused with the server's 400 messages, namespace
from the URL or dropped for cluster-scoped resources); the name-on-the-URL
check; the few fields the server defaults on create (a namespace is
``Active``, a pod ``Pending``); what part of an object ``generation``
tracks; what a no-op write may still touch.

Must not: store anything or bump versions. Pure functions over dicts.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from . import resources, statuses

JSON = dict[str, Any]


def normalize(spec: resources.ResourceSpec, body: Any, *, namespace: str | None) -> JSON:
    """Fill apiVersion/kind/namespace from the URL, refuse contradictions as the server does."""
    if not isinstance(body, Mapping):
        raise statuses.bad_request("the body of the request must be a JSON object")
    obj: JSON = copy.deepcopy(dict(body))
    for field, expected in (("apiVersion", spec.api_version), ("kind", spec.kind)):
        if obj.get(field) not in (None, "", expected):
            raise statuses.bad_request(
                f"the {field} in the data ({obj[field]})"
                f" does not match the expected {field} ({expected})"
            )
        obj[field] = expected
    meta = obj.setdefault("metadata", {})
    if not isinstance(meta, dict):
        raise statuses.bad_request("metadata must be an object")
    if spec.namespaced:
        if meta.get("namespace") and namespace and meta["namespace"] != namespace:
            raise statuses.bad_request(
                "the namespace of the provided object does not match"
                " the namespace sent on the request"
            )
        meta["namespace"] = namespace or meta.get("namespace") or ""
        if not meta["namespace"]:
            raise statuses.bad_request("the namespace of the object must be set")
    else:
        meta.pop("namespace", None)
    return obj


def apply_defaults(spec: resources.ResourceSpec, obj: JSON) -> None:
    """What the registry strategies fill in on create (only where the body left it out)."""
    if spec.key == "v1/namespaces":
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        obj.setdefault("status", {}).setdefault("phase", "Active")
    elif spec.key == "v1/pods":
        obj.setdefault("status", {}).setdefault("phase", "Pending")


def check_name(obj: Mapping[str, Any], name: str) -> None:
    if (given := obj["metadata"].get("name")) != name:
        raise statuses.bad_request(
            f"the name of the object ({given}) does not match the name on the URL ({name})"
        )


def content(obj: Mapping[str, Any], spec: resources.ResourceSpec) -> JSON:
    """What ``generation`` tracks: everything but metadata, and status if it is a subresource."""
    skipped = {"metadata", "apiVersion", "kind"} | ({"status"} if spec.status else set())
    return {k: v for k, v in obj.items() if k not in skipped}


def comparable(obj: Mapping[str, Any]) -> JSON:
    """The object minus what a no-op write may still touch (resourceVersion, ownership times)."""
    meta = dict(obj.get("metadata", {}))
    meta.pop("resourceVersion", None)
    meta["managedFields"] = [
        {k: v for k, v in entry.items() if k != "time"} for entry in meta.get("managedFields") or []
    ]
    return dict(obj, metadata=meta)
