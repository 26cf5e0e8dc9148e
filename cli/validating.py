"""`tailwire validate` and `tailwire crds`: manifests in, problems or CRD files out."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from tailwire.shared import errors
from tailwire.shared.resources import crds, loading


def _read(path: str) -> str:
    return sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")


def check_files(
    paths: Sequence[str], *, out: TextIO, err: TextIO
) -> tuple[list[loading.Checked], bool]:
    """Every object of every file, checked, with each problem printed as
    `<kind>/<name>: <field>: <message>` (files that cannot be read go to `err`); and
    whether anything failed. `tailwire validate` and `tailwire render` both read this way."""
    checked: list[loading.Checked] = []
    failed = False
    for path in paths:
        source = "<stdin>" if path == "-" else path
        try:
            results = loading.validate_text(_read(path))
        except OSError as exc:
            err.write(f"{source}: cannot read: {exc.strerror or exc}\n")
            failed = True
            continue
        except UnicodeDecodeError:
            err.write(f"{source}: not UTF-8 text\n")
            failed = True
            continue
        except errors.ValidationFailed as exc:
            for problem in exc.problems:
                out.write(f"{source}: {problem}\n")
            failed = True
            continue
        for result in results:
            for line in result.lines():
                out.write(line + "\n")
            failed = failed or not result.valid
            checked.append(result)
    return checked, failed


def validate_files(paths: list[str], *, out: TextIO, err: TextIO) -> int:
    """0 when every object in every file is valid; 1 and one line per problem otherwise."""
    checked, failed = check_files(paths, out=out, err=err)
    if not failed:
        err.write(f"{len(checked)} object(s) valid\n")
    return 1 if failed else 0


def write_crds(*, output: Path | None, check: bool, out: TextIO) -> int:
    rendered = crds.files()
    if output is None:
        out.write("---\n".join(rendered.values()))
        return 0
    stale = [name for name, text in rendered.items() if _current(output / name) != text]
    if check:
        for name in stale:
            out.write(f"{output / name} is stale: run `tailwire crds -o {output}`\n")
        return 1 if stale else 0
    output.mkdir(parents=True, exist_ok=True)
    for name in stale:
        (output / name).write_text(rendered[name], encoding="utf-8")
        out.write(f"wrote {output / name}\n")
    return 0


def _current(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
