"""The real peers the tests and the demo run, built from pinned Go modules by `testing/peers/build`.

`binary(name)` finds one (`$TAILWIRE_PEERS_BIN`, else `.peers/bin` at the repository root) or
raises `PeerMissing` naming the build command: a test that needs a peer the machine can build
fails with that reason, it never skips. `crds(project)` is the same for the upstream CRDs the
`crds` module copies out of its pinned Go modules (`.peers/crds/<project>/`). Which versions
are pinned is in each module's go.mod (`testing/peers/<module>/go.mod`) and in
docs/architecture.md.
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
COREDNS_VERSION = "v1.15.0"
# The upstream CRDs (testing/peers/crds/go.mod): project -> (Go module, version).
CRD_MODULES = {
    "gateway-api": ("sigs.k8s.io/gateway-api", "v1.6.3"),
    "envoy-gateway": ("github.com/envoyproxy/gateway", "v1.9.1"),
    "cert-manager": ("github.com/cert-manager/cert-manager", "v1.21.2"),
}


class PeerMissing(RuntimeError):
    """A real peer was not built; the message says how to build it."""


def bin_dir() -> Path:
    configured = os.environ.get("TAILWIRE_PEERS_BIN")
    return Path(configured) if configured else ROOT / ".peers" / "bin"


def crds_dir() -> Path:
    configured = os.environ.get("TAILWIRE_PEERS_CRDS")
    return Path(configured) if configured else ROOT / ".peers" / "crds"


def binary(name: str) -> str:
    """The path of the built peer `name` (`tailscaled`, `headscale`, `kube-apiserver`, ...)."""
    path = bin_dir() / name
    if not os.access(path, os.X_OK):
        raise PeerMissing(
            f"{name}: not built at {path}; build the real peers with `make peers` "
            f"({BUILD.relative_to(ROOT)})"
        )
    return str(path)


def crds(project: str) -> list[Path]:
    """The CRD files of `project` (`gateway-api`, `envoy-gateway`, `cert-manager`) at the
    version `CRD_MODULES` pins, sorted."""
    module, version = CRD_MODULES[project]
    folder = crds_dir() / project
    stamp = folder / "VERSION"
    found = stamp.read_text().split() if stamp.is_file() else []
    if found != [module, version]:
        have = " ".join(found) or "nothing"
        raise PeerMissing(
            f"CRDs of {module} {version}: {folder} holds {have}; fetch them with `make peers` "
            f"({BUILD.relative_to(ROOT)} crds)"
        )
    return sorted(folder.glob("*.yaml"))
