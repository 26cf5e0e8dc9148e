"""Label and field selectors with the real server's grammar and matching rules.

Responsible for: parsing ``labelSelector`` (``a=b``, ``a==b``, ``a!=b``,
``a in (x,y)``, ``a notin (x,y)``, ``a``, ``!a``) and ``fieldSelector``
(``path=value``, ``path!=value`` on the fields a resource allows), and
matching objects against them. Invalid selectors raise a 400 ``BadRequest``
as the server does, so code with a typo fails here as it would on a cluster.

Must not: touch storage or HTTP. Pure functions over plain dicts.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

from . import statuses

_KEY = r"[A-Za-z0-9][-A-Za-z0-9_./]*"
_VALUE = r"[-A-Za-z0-9_.]*"
_SET_RE = re.compile(rf"^(?P<key>{_KEY})\s+(?P<op>in|notin)\s*\((?P<values>[^()]*)\)$")
_NOT_EXISTS_RE = re.compile(rf"^!\s*(?P<key>{_KEY})$")
_EQUALITY_RE = re.compile(rf"^(?P<key>{_KEY})\s*(?P<op>==|=|!=)\s*(?P<value>{_VALUE})$")
_EXISTS_RE = re.compile(rf"^(?P<key>{_KEY})$")


@dataclasses.dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "in", "notin", "exists", "!exists" ("=" and "!=" are "in"/"notin" of one value)
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        match self.op:
            case "exists":
                return self.key in labels
            case "!exists":
                return self.key not in labels
            case "in":
                return self.key in labels and labels[self.key] in self.values
            case _:  # notin and != also match objects without the label, as on the server
                return self.key not in labels or labels[self.key] not in self.values


@dataclasses.dataclass(frozen=True)
class LabelSelector:
    requirements: tuple[Requirement, ...] = ()

    def matches(self, obj: Mapping[str, Any]) -> bool:
        labels = obj.get("metadata", {}).get("labels") or {}
        return all(r.matches(labels) for r in self.requirements)


def _split_outside_parens(text: str) -> list[str]:
    parts: list[str] = []
    depth = 0
    current = ""
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [part.strip() for part in parts]


def parse_labels(text: str | None) -> LabelSelector:
    if not text or not text.strip():
        return LabelSelector()
    requirements: list[Requirement] = []
    for part in _split_outside_parens(text):
        if m := _SET_RE.match(part):
            values = frozenset(v.strip() for v in m["values"].split(",") if v.strip())
            requirements.append(Requirement(m["key"], m["op"], values))
        elif m := _NOT_EXISTS_RE.match(part):
            requirements.append(Requirement(m["key"], "!exists"))
        elif m := _EQUALITY_RE.match(part):
            op = "notin" if m["op"] == "!=" else "in"
            requirements.append(Requirement(m["key"], op, frozenset({m["value"]})))
        elif m := _EXISTS_RE.match(part):
            requirements.append(Requirement(m["key"], "exists"))
        else:
            raise statuses.bad_request(f"unable to parse requirement: {part!r} in {text!r}")
    return LabelSelector(tuple(requirements))


@dataclasses.dataclass(frozen=True)
class FieldTerm:
    path: str
    value: str
    negated: bool

    def matches(self, obj: Mapping[str, Any]) -> bool:
        return (field_value(obj, self.path) == self.value) != self.negated


@dataclasses.dataclass(frozen=True)
class FieldSelector:
    terms: tuple[FieldTerm, ...] = ()

    def matches(self, obj: Mapping[str, Any]) -> bool:
        return all(term.matches(obj) for term in self.terms)

    def exact(self, path: str) -> str | None:
        """The value a positive term pins ``path`` to (e.g. a single-object watch by name)."""
        for term in self.terms:
            if term.path == path and not term.negated:
                return term.value
        return None


def field_value(obj: Mapping[str, Any], path: str) -> str:
    """The field as the server stringifies it: missing is "", booleans are "true"/"false"."""
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def parse_fields(text: str | None, *, allowed: frozenset[str]) -> FieldSelector:
    if not text or not text.strip():
        return FieldSelector()
    terms: list[FieldTerm] = []
    for part in text.split(","):
        m = re.match(r"^\s*(?P<path>[^=!\s]+)\s*(?P<op>==|=|!=)\s*(?P<value>[^,]*?)\s*$", part)
        if m is None:
            raise statuses.bad_request(f"invalid selector: {text!r}; can't understand {part!r}")
        if m["path"] not in allowed:
            raise statuses.bad_request(f"field label not supported: {m['path']}")
        terms.append(FieldTerm(m["path"], m["value"], negated=m["op"] == "!="))
    return FieldSelector(tuple(terms))
