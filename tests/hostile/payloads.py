"""Hostile bus payloads: hypothesis strategies for messages a subscriber must reject.

Every body drawn here is invalid for the model the subscriber expects, by construction
(the model itself is asked, and valid draws are discarded): random bytes, random JSON,
a good event with a wrong `version`, an unknown field, a missing required field, a field of
the wrong shape, or padded past the bus's 512 KiB cap. Headers may carry garbage trace
context. The subjects are the subscriber's real ones, plus odd tokens inside its filter.
"""

from __future__ import annotations

import json
from typing import Any

import pydantic
from hypothesis import assume
from hypothesis import strategies as st

from tailwire.shared.events import base

MAX_KEPT = 64 * 1024
OVERSIZE = base.MAX_MESSAGE_BYTES + 4096


class Hostile:
    """One message to publish (a plain class: hypothesis prints dataclasses field by field,
    and an oversized body would be half a megabyte of repr)."""

    def __init__(self, *, subject: str, body: bytes, headers: dict[str, str], why: str) -> None:
        self.subject = subject
        self.body = body
        self.headers = headers
        self.why = why

    def __repr__(self) -> str:
        # Oversized bodies would make hypothesis print half a megabyte (and warn).
        return f"Hostile({self.subject!r}, {self.why}, {len(self.body)} bytes: {self.body[:60]!r})"


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=40),
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.text(max_size=10), children, max_size=4),
    ),
    max_leaves=15,
)
header_values = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters=":"),
    min_size=1,
    max_size=60,
)
hostile_headers: st.SearchStrategy[dict[str, str]] = st.one_of(
    st.just({}),
    st.fixed_dictionaries({"traceparent": header_values}),
    st.fixed_dictionaries(
        {"traceparent": st.just("00-" + "0" * 32 + "-" + "0" * 16 + "-01"), "x-junk": header_values}
    ),
)


def is_valid(model: type[base.Event], body: bytes) -> bool:
    try:
        model.model_validate_json(body)
    except (pydantic.ValidationError, ValueError):
        return False
    return True


@st.composite
def invalid_body(draw: st.DrawFn, good: base.Event) -> tuple[bytes, str]:
    """(body, what is wrong with it) — never valid for `type(good)`."""
    model = type(good)
    document: dict[str, Any] = good.model_dump(mode="json")
    how = draw(
        st.sampled_from(
            ["bytes", "json", "version", "unknown-field", "missing", "wrong-shape", "oversized"]
        )
    )
    if how == "bytes":
        body = draw(st.binary(min_size=0, max_size=200))
    elif how == "json":
        body = json.dumps(draw(json_values)).encode()
    elif how == "version":
        document["version"] = draw(
            st.one_of(
                st.integers(min_value=2, max_value=2**40),
                st.integers(max_value=0),
                st.text(max_size=5),
                st.none(),
            )
        )
        body = json.dumps(document).encode()
    elif how == "unknown-field":
        key = draw(st.text(min_size=1, max_size=12).filter(lambda k: k not in document))
        document[key] = draw(json_values)
        body = json.dumps(document).encode()
    elif how == "missing":
        required = [n for n, f in model.model_fields.items() if f.is_required()]
        document.pop(draw(st.sampled_from(required)), None)
        body = json.dumps(document).encode()
    elif how == "wrong-shape":
        field = draw(st.sampled_from(sorted(document)))
        document[field] = draw(
            st.one_of(
                st.lists(json_values, min_size=1, max_size=3),
                st.dictionaries(st.text(max_size=5), json_values, min_size=1, max_size=3),
            )
        )
        body = json.dumps(document).encode()
    else:
        # A distinct prefix, so two oversized letters never share their kept 64 KiB.
        document = {"~": draw(st.text(min_size=1, max_size=20)), **document}
        document["padding"] = "x" * OVERSIZE
        body = json.dumps(document).encode()
    assume(not is_valid(model, body))
    return body, how


@st.composite
def hostile_messages(draw: st.DrawFn, *, good: base.Event, subjects: list[str]) -> Hostile:
    body, why = draw(invalid_body(good))
    return Hostile(
        subject=draw(st.sampled_from(subjects)),
        body=body,
        headers=draw(hostile_headers),
        why=why,
    )


def batches(*sources: tuple[base.Event, list[str]], size: int = 10, extra: Any = None) -> Any:
    """Lists of hostile messages for the given (good event, its subjects) feeds, with
    distinct (subject, body): the dead-letter subject deduplicates on exactly that, so two
    equal ones would rightly count once. `extra` adds another strategy of `Hostile`."""
    choices = [hostile_messages(good=good, subjects=subjects) for good, subjects in sources]
    if extra is not None:
        choices.append(extra)
    return st.lists(
        st.one_of(choices),
        min_size=size,
        max_size=size,
        unique_by=lambda h: (h.subject, h.body[:MAX_KEPT]),
    )


def valid_body_on(subjects: list[str], *, good: base.Event, why: str) -> Any:
    """A good body on a subject the subscriber must refuse it on."""
    return st.builds(
        Hostile,
        subject=st.sampled_from(subjects),
        body=st.just(good.to_bytes()),
        headers=hostile_headers,
        why=st.just(why),
    )
