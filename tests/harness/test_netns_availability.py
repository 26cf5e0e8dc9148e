"""Without root the namespace fixture skips with a reason instead of failing (runs anywhere)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tailwire.testing import netns


@pytest.fixture
def as_non_root(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    netns.unavailable_reason.cache_clear()
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    yield
    monkeypatch.undo()
    netns.unavailable_reason.cache_clear()


@pytest.mark.usefixtures("as_non_root")
def test_reason_names_root() -> None:
    assert netns.unavailable_reason() == "network namespaces need root (os.geteuid() != 0)"


@pytest.mark.usefixtures("as_non_root")
def test_fixture_skips_with_the_reason(request: pytest.FixtureRequest) -> None:
    with pytest.raises(pytest.skip.Exception, match="need root"):
        request.getfixturevalue("netns_factory")
