"""Checking that an output can be written, before any work starts; folders built beside their
target and renamed into place (`staging_folder`, `publish_folder`).

A command that loads a model and generates for an hour must not fail at the end because its
`--out` sits in a read-only folder, under `/proc`, or below a file. Every command that writes
calls `check_writable` first: it creates (and removes) a temporary file where the output, or
the first folder missing on its way, would go, and turns any failure into one `error: cannot
write OUT: why`.

    check_writable(Path("runs/x/samples.jsonl"))            # the file's folder must take new files
    check_writable(Path("eval/"), kind="folder")            # the folder itself must take new files
    check_writable(Path("ckpt/"), kind="renamed_folder")    # built beside it, renamed into place
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator, Literal

from fem_cli.errors import FemError


def _first_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_writable(out: str | Path, kind: Literal["file", "folder", "renamed_folder"] = "file") -> None:
    """FemError `cannot write OUT: why` unless files can be created where `out` goes: in its
    folder for a file or a folder built beside it and renamed into place, in itself for a folder."""
    out = Path(out)
    where = out if kind == "folder" else out.parent
    if kind != "file" and out.exists() and not out.is_dir():
        raise FemError(f"cannot write {out}: it is a file, not a folder")
    if kind == "file" and out.is_dir():
        raise FemError(f"cannot write {out}: it is a folder, not a file")
    # Probed where the first missing folder would be made, so a check leaves no folder behind.
    existing = _first_existing(where.absolute())
    if not existing.is_dir():
        raise FemError(f"cannot write {out}: {existing} is a file, not a folder")
    try:
        handle, probe = tempfile.mkstemp(prefix=".fem-write-check.", dir=existing)
    except OSError as err:
        raise FemError(f"cannot write {out}: cannot create files in {existing} ({err.strerror or err})") from None
    os.close(handle)
    os.unlink(probe)


@contextlib.contextmanager
def staging_folder(target: Path) -> Iterator[Path]:
    """A fresh folder beside `target` (same file system, so publishing is a rename), always removed."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def publish_folder(folder: Path, target: Path) -> None:
    """Rename a finished folder to `target`, replacing what was there."""
    if target.exists():
        shutil.rmtree(target)
    os.replace(folder, target)
