"""Validated JSONL reading and atomic writing.

Every line is parsed and validated into its record type; the first bad line stops the read with
`file:line: what is wrong`. Writers go through a temporary file in the same folder and a rename,
so an interrupted run never leaves a half-written file under the final name.
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


def json_objects(path: Path, lines: Iterable[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line; FemError with `file:line` otherwise."""
    for line_number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            payload = json.loads(line)
        except json.JSONDecodeError as err:
            raise FemError(f"{path}:{line_number}: not valid JSON ({err.msg})") from None
        if not isinstance(payload, dict):
            raise FemError(f"{path}:{line_number}: expected a JSON object")
        yield line_number, payload


def iter_jsonl(path: str | Path, record_type: type[R]) -> Iterator[R]:
    path = Path(path)
    if not path.is_file():
        raise FemError(f"{path}: no such file")
    with path.open(encoding="utf-8") as handle:
        for line_number, payload in json_objects(path, handle):
            try:
                yield record_type.model_validate(payload)
            except ValidationError as err:
                raise FemError(
                    f"{path}:{line_number}: not a valid {record_type.__name__}: "
                    f"{describe_validation_error(err)}"
                ) from None


def read_jsonl(path: str | Path, record_type: type[R]) -> list[R]:
    return list(iter_jsonl(path, record_type))


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "w") -> Iterator[Any]:
    """Open a temporary sibling of `path`; rename it over `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
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
