"""What rendering reports besides manifests: findings, each naming the field it is about.

A finding is an `errors.Problem` (field + message, the same words `tailwire validate` uses)
with a category, so status can say which condition it belongs to. Nothing is silently
ignored: every setting that is not enforced, every route that lost a conflict, every
Service that could not get a route becomes a finding. No I/O.
"""

from __future__ import annotations

import dataclasses
import enum

from tailwire.shared import errors


class Category(enum.StrEnum):
    INVALID = "Invalid"  # the spec cannot be rendered; nothing is applied
    MISSING = "Missing"  # a referenced object does not exist (yet)
    CONFLICT = "Conflict"  # a generated hostname lost to a higher-priority owner
    REFUSED = "Refused"  # a Service got no route (host too long, no usable port, ...)
    NOT_ENFORCED = "NotEnforced"  # a setting tailwire accepts but cannot enforce here
    REFERENCED = "Referenced"  # a user-owned object is used as is, never overwritten
    NOT_PERMITTED = "NotPermitted"  # another namespace did not consent to being written to


@dataclasses.dataclass(frozen=True, kw_only=True)
class Finding(errors.Problem):
    category: Category


def finding(*, category: Category, field: str, message: str) -> Finding:
    return Finding(category=category, field=field, message=message)
