"""nftables in a namespace through `nft` (run under `nsenter --net`): read the digest of our
table, replace the table atomically (one `nft -f` transaction). It touches only the table
`facts.NFT_TABLE`; failures become `errors.DatapathError` with nft's own message.
"""

from __future__ import annotations

import re
import shutil
import subprocess

from tailwire.services.nodeagent.domain import facts
from tailwire.shared import errors

_DIGEST = re.compile(r'comment "tailwire (sha256:[0-9a-f]+)"')
TIMEOUT = 10.0


def _nft(
    path: str, args: list[str], *, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    if shutil.which("nft") is None or shutil.which("nsenter") is None:
        raise errors.DatapathError("nftables needs the `nft` and `nsenter` commands")
    try:
        return subprocess.run(
            ["nsenter", f"--net={path}", "nft", *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise errors.DatapathError(f"nft in {path}: {exc}") from exc


def read_digest(path: str) -> str | None:
    """The digest our table carries, or None if the table is absent."""
    result = _nft(path, ["list", "table", "inet", facts.NFT_TABLE])
    if result.returncode != 0:
        return None
    found = _DIGEST.search(result.stdout)
    return found.group(1) if found else None


def replace(path: str, ruleset: str) -> None:
    result = _nft(path, ["-f", "-"], stdin=ruleset)
    if result.returncode != 0:
        raise errors.DatapathError(f"nft -f in {path}: {result.stderr.strip()}")


def delete(path: str) -> None:
    """Remove our table; one that is already gone is fine (declared, then deleted)."""
    replace(path, f"table inet {facts.NFT_TABLE}\ndelete table inet {facts.NFT_TABLE}\n")
