"""Per-batch checkpoints of the long stages (sampling, generative evaluation).

A stage works through its questions in batches of `--checkpoint-every` questions; each finished
batch's records go to `.<out>.partial/<key>.jsonl` (atomically) beside the output. Rerun after an
interruption, the stage reads finished batches back instead of generating them again. Seeds are
per request and the batches are cut the same way every run, so the final file is byte for byte
what an uninterrupted run writes. The folder is stamped with a fingerprint of the stage's config,
its input files and its model folder: a checkpoint of another config is discarded, never reused.
It is removed once the output is written.

    checkpoint = Checkpoint.open(Path("samples.jsonl"), fingerprint(cfg, inputs, model), print)
    records = checkpoint.load(key, Sample)            # None: not done yet
    checkpoint.save(key, records)
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence, TypeVar

from pydantic import BaseModel

from fem_cli.jsonl import atomic_write, read_jsonl, write_jsonl
from fem_cli.provenance import as_jsonable, sha256_file

R = TypeVar("R", bound=BaseModel)
STAMP = "fingerprint.txt"


def fingerprint(config: Any, inputs: Iterable[str | Path], model_path: str | None, ignore: Sequence[str] = ("out",)) -> str:
    """What the outputs depend on: the config (less `ignore`), input file hashes, and the model
    folder's files (name, size, modification time: hashing gigabytes of weights would cost more
    than the batches it saves)."""
    settings = {key: value for key, value in as_jsonable(config).items() if key not in ignore}
    model_files: list[Any] = []
    if model_path and Path(model_path).is_dir():
        for path in sorted(Path(model_path).rglob("*")):
            if path.is_file():
                stat = path.stat()
                model_files.append([str(path.relative_to(model_path)), stat.st_size, stat.st_mtime_ns])
    payload = {
        "config": settings,
        "inputs": [sha256_file(path) for path in inputs if Path(path).is_file()],
        "model": [model_path, model_files],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def partial_folder(out: Path) -> Path:
    return out.parent / f".{out.name}.partial"


def batch_key(*parts: Any, ids: Sequence[str]) -> str:
    """A file-safe key for one batch: what was asked (stage, draw offset, ...) and of which questions."""
    text = json.dumps([list(map(str, parts)), list(ids)])
    return hashlib.sha256(text.encode()).hexdigest()[:24]


class Checkpoint:
    def __init__(self, folder: Path, enabled: bool = True) -> None:
        self.folder = folder
        self.enabled = enabled
        self.reused = self.generated = 0

    @classmethod
    def open(cls, out: Path, stamp: str, on_status: Callable[[str], None], enabled: bool = True) -> "Checkpoint":
        folder = partial_folder(out)
        if not enabled:
            return cls(folder, enabled=False)
        stamp_file = folder / STAMP
        if folder.is_dir():
            found = stamp_file.read_text().strip() if stamp_file.is_file() else None
            if found != stamp:
                on_status(f"checkpoint {folder}: made with another config, inputs or model; discarded")
                shutil.rmtree(folder)
        if not stamp_file.is_file():
            with atomic_write(stamp_file) as handle:
                handle.write(stamp + "\n")
        return cls(folder)

    def load(self, key: str, record_type: type[R]) -> list[R] | None:
        path = self.folder / f"{key}.jsonl"
        if not (self.enabled and path.is_file()):
            return None
        self.reused += 1
        return read_jsonl(path, record_type)

    def save(self, key: str, records: Sequence[BaseModel]) -> None:
        self.generated += 1
        if self.enabled:
            write_jsonl(self.folder / f"{key}.jsonl", records)

    def summary(self) -> str | None:
        """One line on what was reused, when something was."""
        if not self.reused:
            return None
        total = self.reused + self.generated
        return f"resumed from {self.folder}: {self.reused} of {total} batches reused, {self.generated} generated"

    def finish(self) -> None:
        """The output is written: the checkpoint has served."""
        shutil.rmtree(self.folder, ignore_errors=True)
