"""Fixtures of the real-peer tests: a real tailnet (Headscale and tailscaled in namespaces)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tailwire.testing import netns, tailnet


@pytest.fixture
def real_tailnet(netns_factory: netns.NetnsFactory, short_root: Path) -> Iterator[tailnet.Tailnet]:
    missing = tailnet.tools_missing() or netns.unavailable_reason()
    if missing:
        pytest.fail(f"the real tailnet needs {missing}")
    net = tailnet.Tailnet(factory=netns_factory, workdir=short_root / "tailnet")
    try:
        yield net.start()
    finally:
        net.close()
