"""Pieces every resource model shares: the camelCase base, label selectors, references,
conditions, object metadata, and the conversion of pydantic errors into field paths."""

from __future__ import annotations

import datetime
import re
from typing import Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from tailwire.shared import errors

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(
    r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)


class Spec(BaseModel):
    """Base of spec/status models: camelCase on the wire, unknown fields refused (a typo in a
    manifest is reported, not silently dropped), defaults filled in."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        validate_default=True,
    )

    def dump(self) -> dict[str, Any]:
        """The manifest form: camelCase, no unset optional fields."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class LabelSelectorRequirement(Spec):
    key: str
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: list[str] = Field(default_factory=list)

    @pydantic.model_validator(mode="after")
    def _values_match_operator(self) -> LabelSelectorRequirement:
        if self.operator in ("In", "NotIn") and not self.values:
            raise ValueError(f"operator {self.operator} needs at least one value")
        if self.operator in ("Exists", "DoesNotExist") and self.values:
            raise ValueError(f"operator {self.operator} takes no values")
        return self


class LabelSelector(Spec):
    """A Kubernetes label selector. An empty selector selects everything."""

    match_labels: dict[str, str] = Field(default_factory=dict)
    match_expressions: list[LabelSelectorRequirement] = Field(default_factory=list)

    def matches(self, labels: dict[str, str]) -> bool:
        if any(labels.get(k) != v for k, v in self.match_labels.items()):
            return False
        for req in self.match_expressions:
            present = req.key in labels
            if req.operator == "In" and (not present or labels[req.key] not in req.values):
                return False
            if req.operator == "NotIn" and present and labels[req.key] in req.values:
                return False
            if req.operator == "Exists" and not present:
                return False
            if req.operator == "DoesNotExist" and present:
                return False
        return True


class LocalPolicyTargetReference(Spec):
    """A reference to another object (the seed reference's `LocalPolicyTargetReference`)."""

    group: str | None = None
    kind: str
    name: str = Field(min_length=1)
    namespace: str | None = None


class SecretKeyRef(Spec):
    name: str = Field(min_length=1)
    namespace: str | None = None
    key: str | None = None


class Condition(Spec):
    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str = ""
    observed_generation: int | None = None
    last_transition_time: datetime.datetime | None = None


class ObjectMeta(BaseModel):
    """The parts of metadata validation looks at; everything else is kept, not checked."""

    model_config = ConfigDict(extra="allow", frozen=True)

    name: str = Field(min_length=1, max_length=253)
    namespace: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    generation: int | None = None
    uid: str | None = None
    resource_version: str | None = Field(default=None, alias="resourceVersion")

    @pydantic.field_validator("name")
    @classmethod
    def _dns_subdomain(cls, value: str) -> str:
        if not DNS_SUBDOMAIN.match(value):
            raise ValueError(
                f"{value!r} is not a DNS subdomain name (lower-case alphanumerics, '-', '.')"
            )
        return value


def field_path(loc: tuple[int | str, ...]) -> str:
    """`("spec", "tailnets", 0, "name")` -> `spec.tailnets[0].name`."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.startswith(("function-", "tagged-union")):
            continue  # pydantic's internal validator names, meaningless to a user
        else:
            out += f".{part}" if out else str(part)
    return out


def problems_from(
    exc: pydantic.ValidationError, *, prefix: tuple[str, ...] = ()
) -> list[errors.Problem]:
    """One Problem per pydantic error, with a manifest field path and a plain message."""
    problems = []
    for error in exc.errors(include_url=False):
        message = str(error["msg"])
        message = message.removeprefix("Value error, ").removeprefix("Assertion failed, ")
        if error["type"] == "extra_forbidden":
            message = "unknown field"
        problems.append(
            errors.Problem(field=field_path(prefix + tuple(error["loc"])), message=message)
        )
    return problems
