"""Patch documents applied to plain objects: JSON merge patch and JSON patch.

Responsible for: RFC 7386 merge patches (also used, knowingly simplified, for
strategic merge patches: lists are replaced, not merged by key, and
``$patch`` directives are not understood) and RFC 6902 JSON patches
(add, remove, replace, move, copy, test). A malformed or failing JSON patch
raises the same 4xx ``Status`` the server answers with.

Must not: know about metadata, status, resourceVersions or ownership; it
returns a new document and never mutates its inputs.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from . import statuses


def merge(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, ``null`` deletes, everything else replaces."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge(result.get(key), value)
    return result


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise statuses.bad_request(f"JSON pointer must start with '/': {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _index(container: list[Any], part: str, *, for_insert: bool) -> int:
    if for_insert and part == "-":
        return len(container)
    if not part.isdigit():
        raise statuses.invalid_patch(f"invalid array index {part!r}")
    index = int(part)
    if index > len(container) or (not for_insert and index == len(container)):
        raise statuses.invalid_patch(f"array index {index} out of bounds")
    return index


def _parent(doc: Any, tokens: list[str]) -> Any:
    node = doc
    for part in tokens[:-1]:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list):
            node = node[_index(node, part, for_insert=False)]
        else:
            raise statuses.invalid_patch(f"missing path element {part!r}")
    return node


def _get(doc: Any, tokens: list[str]) -> Any:
    if not tokens:
        return doc
    parent = _parent(doc, tokens)
    if isinstance(parent, dict):
        if tokens[-1] not in parent:
            raise statuses.invalid_patch(f"missing value at /{'/'.join(tokens)}")
        return parent[tokens[-1]]
    if isinstance(parent, list):
        return parent[_index(parent, tokens[-1], for_insert=False)]
    raise statuses.invalid_patch(f"cannot traverse into a scalar at /{'/'.join(tokens)}")


def _add(doc: Any, tokens: list[str], value: Any) -> Any:
    if not tokens:
        return value
    parent = _parent(doc, tokens)
    if isinstance(parent, dict):
        parent[tokens[-1]] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, tokens[-1], for_insert=True), value)
    else:
        raise statuses.invalid_patch(f"cannot add into a scalar at /{'/'.join(tokens)}")
    return doc


def _remove(doc: Any, tokens: list[str]) -> Any:
    _get(doc, tokens)  # fails with the server's message if absent
    parent = _parent(doc, tokens)
    if isinstance(parent, dict):
        del parent[tokens[-1]]
    else:
        del parent[_index(parent, tokens[-1], for_insert=False)]
    return doc


def apply_json_patch(target: Any, operations: Any) -> Any:
    """RFC 6902, atomically: the input is untouched if any operation fails."""
    if not isinstance(operations, list):
        # What kube-apiserver says when a merge-patch body is sent as a JSON patch.
        raise statuses.bad_request(
            "json: cannot unmarshal object into Go value of type jsonpatch.Patch"
        )
    doc = copy.deepcopy(target)
    for operation in operations:
        if not isinstance(operation, Mapping) or "op" not in operation or "path" not in operation:
            raise statuses.bad_request(f"invalid JSON patch operation: {operation!r}")
        op, tokens = operation["op"], _pointer(operation["path"])
        match op:
            case "add":
                doc = _add(doc, tokens, copy.deepcopy(operation.get("value")))
            case "remove":
                doc = _remove(doc, tokens)
            case "replace":
                _get(doc, tokens)
                doc = _add(_remove(doc, tokens), tokens, copy.deepcopy(operation.get("value")))
            case "move" | "copy":
                source = _pointer(operation.get("from", ""))
                value = copy.deepcopy(_get(doc, source))
                if op == "move":
                    doc = _remove(doc, source)
                doc = _add(doc, tokens, value)
            case "test":
                if _get(doc, tokens) != operation.get("value"):
                    raise statuses.invalid_patch(f"testing value at {operation['path']} failed")
            case _:
                raise statuses.bad_request(f"unexpected JSON patch operation {op!r}")
    return doc
