"""Field ownership: ``metadata.managedFields`` and the merge rules of server-side apply.

Responsible for: recording which manager set which fields (an ``Update``
entry per manager for create/PUT/PATCH, an ``Apply`` entry for apply), for
server-side apply: merging the applied configuration into the live object,
removing fields the same manager applied before and no longer applies (if
nobody else owns them), and refusing to change fields another manager owns
with a different value unless ``force`` is set.

Simplified on purpose, and said so: a field set is the set of *leaf* paths
of the object; lists are atomic leaves (the real server merges
``listType=map`` lists by key, e.g. containers by name); the ``fieldsV1``
written back uses the real ``f:`` shape without ``k:``/``v:`` list keys.

Must not: bump resourceVersions, decide about status isolation, or speak HTTP.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

JSON = dict[str, Any]
Path = tuple[str, ...]

# Metadata the server owns itself; no manager ever "sets" these.
_SERVER_METADATA = frozenset(
    {
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "managedFields",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "selfLink",
        "generateName",
    }
)


class ApplyConflictError(Exception):
    """Fields owned by other managers with other values; maps ``.a.b`` to the owner."""

    def __init__(self, owners: dict[str, str]) -> None:
        super().__init__(owners)
        self.owners = owners


def leaves(obj: Mapping[str, Any] | None) -> dict[Path, Any]:
    """Every leaf value of a manifest by path, minus identity and server-owned fields."""
    result: dict[Path, Any] = {}

    def walk(node: Mapping[str, Any], prefix: Path) -> None:
        for key, value in node.items():
            if prefix == () and key in ("apiVersion", "kind"):
                continue
            if prefix == ("metadata",) and key in _SERVER_METADATA:
                continue
            if isinstance(value, Mapping) and value:
                walk(value, (*prefix, key))
            else:
                result[(*prefix, key)] = value

    walk(obj or {}, ())
    return result


def render(paths: Iterable[Path]) -> JSON:
    """Paths to the ``fieldsV1`` tree: ``{"f:spec": {"f:replicas": {}}}``."""
    tree: JSON = {}
    for path in sorted(paths):
        node = tree
        for key in path:
            node = node.setdefault(f"f:{key}", {})
    return tree


def parse(fields: Mapping[str, Any], prefix: Path = ()) -> set[Path]:
    result: set[Path] = set()
    for key, child in fields.items():
        if not key.startswith("f:"):
            continue  # "." and "k:"/"v:" entries are not produced here
        path = (*prefix, key[2:])
        result |= parse(child, path) if child else {path}
    return result


def dotted(path: Path) -> str:
    return "." + ".".join(path)


def _entries(obj: Mapping[str, Any] | None) -> list[JSON]:
    return copy.deepcopy(list(((obj or {}).get("metadata") or {}).get("managedFields") or []))


def _owned(entry: Mapping[str, Any]) -> set[Path]:
    return parse(entry.get("fieldsV1") or {})


def _with(
    entries: list[JSON],
    *,
    key: tuple[str, str, str | None],
    owned: set[Path],
    api_version: str,
    now: str,
) -> list[JSON]:
    """Replace (or add) the entry of one manager+operation+subresource; drop empty entries."""
    manager, operation, subresource = key
    result = [e for e in entries if _key(e) != key]
    if owned:
        entry: JSON = {
            "manager": manager,
            "operation": operation,
            "apiVersion": api_version,
            "time": now,
            "fieldsType": "FieldsV1",
            "fieldsV1": render(owned),
        }
        if subresource:
            entry["subresource"] = subresource
        result.append(entry)
    return [e for e in result if _owned(e)]


def _key(entry: Mapping[str, Any]) -> tuple[str, str, str | None]:
    return (entry.get("manager", ""), entry.get("operation", ""), entry.get("subresource"))


def _drop(
    entries: list[JSON], paths: set[Path], *, keep: tuple[str, str, str | None]
) -> list[JSON]:
    """Take ``paths`` away from every entry except ``keep``."""
    result: list[JSON] = []
    for entry in entries:
        if _key(entry) != keep:
            entry = dict(entry, fieldsV1=render(_owned(entry) - paths))
        result.append(entry)
    return result


def record_update(
    *,
    old: Mapping[str, Any] | None,
    new: Mapping[str, Any],
    manager: str,
    subresource: str | None,
    api_version: str,
    now: str,
) -> list[JSON]:
    """The managedFields after a create/PUT/PATCH: the writer now owns what it changed."""
    before, after = leaves(old), leaves(new)
    missing = object()
    changed = {p for p, v in after.items() if before.get(p, missing) != v}
    removed = set(before) - set(after)
    key = (manager, "Update", subresource)
    entries = _drop(_entries(old), changed | removed, keep=key)
    mine = next((_owned(e) for e in entries if _key(e) == key), set())
    return _with(
        entries, key=key, owned=(mine - removed) | changed, api_version=api_version, now=now
    )


def _merge(live: Any, config: Any) -> Any:
    if isinstance(live, Mapping) and isinstance(config, Mapping):
        merged = dict(live)
        for key, value in config.items():
            merged[key] = _merge(live.get(key), value)
        return merged
    return copy.deepcopy(config)


def _remove(obj: JSON, path: Path) -> None:
    node: Any = obj
    for key in path[:-1]:
        node = node.get(key) if isinstance(node, dict) else None
    if isinstance(node, dict):
        node.pop(path[-1], None)


def apply(
    *,
    live: Mapping[str, Any] | None,
    config: Mapping[str, Any],
    manager: str,
    force: bool,
    subresource: str | None,
    api_version: str,
    now: str,
) -> JSON:
    """Server-side apply of ``config`` onto ``live`` (None: create); returns the merged object.

    The returned object carries the new ``metadata.managedFields``.
    Raises :class:`ApplyConflictError` unless ``force``.
    """
    key = (manager, "Apply", subresource)
    entries = _entries(live)
    current, applied = leaves(live), leaves(config)
    missing = object()

    conflicts: dict[str, str] = {}
    for entry in entries:
        if entry.get("manager") == manager:
            continue
        for path in _owned(entry) & set(applied):
            if current.get(path, missing) != applied[path]:
                conflicts[dotted(path)] = entry.get("manager", "")
    if conflicts and not force:
        raise ApplyConflictError(conflicts)
    taken = {path for path in applied if dotted(path) in conflicts}
    entries = _drop(entries, taken, keep=key)

    merged: JSON = _merge(dict(live or {}), config)
    previously = next((_owned(e) for e in entries if _key(e) == key), set())
    others = set().union(*(_owned(e) for e in entries if _key(e) != key))
    for path in previously - set(applied) - others:
        _remove(merged, path)

    entries = _with(entries, key=key, owned=set(applied), api_version=api_version, now=now)
    merged.setdefault("metadata", {})["managedFields"] = entries
    return merged
