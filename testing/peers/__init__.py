"""The real peers the tests and the demo run, built from pinned Go modules by `testing/peers/build`.

`binary(name)` finds one (`$TAILWIRE_PEERS_BIN`, else `.peers/bin` at the repository root) or
raises `PeerMissing` naming the build command: a test that needs a peer the machine can build
fails with that reason, it never skips. Which versions are pinned is in each module's go.mod
(`testing/peers/<module>/go.mod`) and in docs/architecture.md.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "testing" / "peers" / "build"

# The versions the tests prove tailwire against (each module's go.mod pins the same).
TAILSCALE_VERSION = "v1.102.5"
HEADSCALE_VERSION = "v0.29.3"
KUBERNETES_VERSION = "v1.36.3"


class PeerMissing(RuntimeError):
    """A real peer was not built; the message says how to build it."""


def bin_dir() -> Path:
    configured = os.environ.get("TAILWIRE_PEERS_BIN")
    return Path(configured) if configured else ROOT / ".peers" / "bin"


def binary(name: str) -> str:
    """The path of the built peer `name` (`tailscaled`, `headscale`, `kube-apiserver`, ...)."""
    path = bin_dir() / name
    if not os.access(path, os.X_OK):
        raise PeerMissing(
            f"{name}: not built at {path}; build the real peers with `make peers` "
            f"({BUILD.relative_to(ROOT)})"
        )
    return str(path)
