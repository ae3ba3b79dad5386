"""Validated JSONL reading and atomic writing.

Every line is parsed and validated into its record type; the first bad line stops the read with
`file:line: what is wrong`. A leading UTF-8 byte-order mark (Windows editors, Excel exports) is
accepted. Writers go through a temporary file in the same folder and a rename, so an interrupted
run never leaves a half-written file under the final name; the temporary name carries the
writer's process id, so the next write of that file removes what a killed writer left.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator, TypeVar

from pydantic import BaseModel, ValidationError

from fem_cli.errors import FemError

R = TypeVar("R", bound=BaseModel)


def describe_validation_error(err: ValidationError) -> str:
    first = err.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    message = first["msg"]
    more = f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else ""
    return f"{where}: {message}{more}" if where else f"{message}{more}"


# utf-8-sig reads a leading byte-order mark as nothing, and is plain UTF-8 otherwise.
TEXT_ENCODING = "utf-8-sig"


def json_objects(path: Path, lines: Iterable[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line; FemError with `file:line` otherwise."""
    for line_number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            payload = json.loads(line)
        except json.JSONDecodeError as err:
            raise FemError(f"{path}:{line_number}: not valid JSON ({err.msg})") from None
        except RecursionError:
            raise FemError(f"{path}:{line_number}: not valid JSON (nested too deeply)") from None
        if not isinstance(payload, dict):
            raise FemError(f"{path}:{line_number}: expected a JSON object")
        yield line_number, payload


def iter_jsonl(path: str | Path, record_type: type[R]) -> Iterator[R]:
    return (record for _, record in iter_jsonl_lines(path, record_type))


def iter_jsonl_lines(path: str | Path, record_type: type[R]) -> Iterator[tuple[int, R]]:
    """(line number, record) for every record of a JSONL file."""
    path = Path(path)
    if not path.is_file():
        raise FemError(f"{path}: no such file")
    with path.open("rb") as handle:
        for line_number, payload in json_objects(path, text_lines(path, handle)):
            yield line_number, validate_record(record_type, payload, f"{path}:{line_number}")


def text_lines(path: Path, raw_lines: Iterable[bytes]) -> Iterator[str]:
    """Decoded lines (split at b"\n" only), a byte-order mark on the first one dropped;
    FemError `file:line` for a line that is not UTF-8."""
    for line_number, raw in enumerate(raw_lines, start=1):
        try:
            yield raw.decode(TEXT_ENCODING if line_number == 1 else "utf-8")
        except UnicodeDecodeError as err:
            raise FemError(f"{path}:{line_number}: not UTF-8 text (byte {err.start + 1} of the line)") from None


def validate_record(record_type: type[R], payload: dict[str, Any], where: str) -> R:
    try:
        return record_type.model_validate(payload)
    except ValidationError as err:
        raise FemError(f"{where}: not a valid {record_type.__name__}: {describe_validation_error(err)}") from None


def read_jsonl(path: str | Path, record_type: type[R]) -> list[R]:
    return list(iter_jsonl(path, record_type))


def check_unique(entries: Iterable[tuple[Any, str]], what: str = "id") -> None:
    """FemError `FILE:LINE: duplicate id 'X' (first on line N)` for the first key seen twice;
    `entries` yields (key, where) with where = "file:line". Later stages key samples, resume
    state and scores by id, so a repeated id would credit one question's answers to another."""
    first: dict[Any, str] = {}
    for key, where in entries:
        if key not in first:
            first[key] = where
            continue
        earlier = first[key]
        earlier_file, _, earlier_line = earlier.rpartition(":")
        same_file = where.rpartition(":")[0] == earlier_file and earlier_line.isdigit()
        shown = repr(key) if isinstance(key, str) else "(" + ", ".join(map(repr, key)) + ")"
        at = f"line {earlier_line}" if same_file else earlier
        if where == earlier:
            at += ": the file is given twice"
        raise FemError(f"{where}: duplicate {what} {shown} (first on {at})")


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def remove_stale_temporaries(path: Path) -> None:
    """Delete temporary siblings of `path` left by writers that no longer run (a killed run)."""
    prefix = f".{path.name}."
    with contextlib.suppress(OSError):
        for sibling in path.parent.iterdir():
            name = sibling.name
            if not (name.startswith(prefix) and name.endswith(".tmp")):
                continue
            pid = name[len(prefix):].split(".", 1)[0]
            if pid.isdigit() and int(pid) != os.getpid() and not _process_alive(int(pid)):
                with contextlib.suppress(OSError):
                    sibling.unlink()


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "w") -> Iterator[Any]:
    """Open a temporary sibling of `path`; rename it over `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else "utf-8") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


def write_jsonl(path: str | Path, records: Iterable[BaseModel]) -> int:
    count = 0
    with atomic_write(path) as handle:
        for record in records:
            handle.write(record.model_dump_json() + "\n")
            count += 1
    return count


def write_json(path: str | Path, payload: Any) -> None:
    with atomic_write(path) as handle:
        json.dump(payload, handle, indent=2, sort_keys=False, default=str)
        handle.write("\n")
