"""Golden files: compare text with tests/dnsupdater/golden/<name>; regenerate on request.

`TAILWIRE_UPDATE_GOLDEN=1 .venv/bin/pytest tests/dnsupdater` rewrites them; review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

GOLDEN = Path(__file__).parent / "golden"


def check(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("TAILWIRE_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"golden file {path} missing: run with TAILWIRE_UPDATE_GOLDEN=1"
    assert text == path.read_text(), f"{name} differs from its golden file"
