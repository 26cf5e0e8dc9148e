"""Fixtures of the real-peer tests: a real tailnet (Headscale and tailscaled in namespaces)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tailwire.testing import netns, tailnet


@pytest.fixture
def short_root() -> Iterator[Path]:
    """A short temp dir: unix socket paths must stay under 108 bytes (pytest's are long)."""
    root = Path(tempfile.mkdtemp(prefix="twrp-", dir="/tmp"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


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
