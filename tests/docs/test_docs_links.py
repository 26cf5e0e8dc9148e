"""Relative links between the documents in docs/ point at files that exist, and the operations
guide names only condition reasons that exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tailwire.shared.resources import conditions

DOCS = Path(__file__).resolve().parents[2] / "docs"
LINK = re.compile(r"\]\(([^)#\s]+)(#[^)\s]*)?\)")


@pytest.mark.parametrize("page", ["architecture.md", "operations.md", "metrics.md", "subjects.md"])
def test_relative_links_resolve(page: str) -> None:
    text = (DOCS / page).read_text()
    for target, _ in LINK.findall(text):
        if "://" in target:
            continue
        assert (DOCS / target).exists(), f"{page} links {target}, which does not exist"


def test_operations_guide_names_real_reasons_and_every_egress_reason() -> None:
    text = (DOCS / "operations.md").read_text()
    named = set(re.findall(r"\| `([A-Z][A-Za-z]+)` \|", text))
    reasons = {str(r) for r in conditions.Reason}
    assert named <= reasons, named - reasons
    egress = {
        "InvalidSpec", "WaitingForKey", "WaitingForNodes", "Deleting", "Reconciled", "Pending",
        "KeyFailed", "CredentialsRefused", "KeyIssued", "NodeErrors", "RoutesRefused",
        "SelectorConflict", "AsExpected",
    }  # fmt: skip
    assert egress <= named
