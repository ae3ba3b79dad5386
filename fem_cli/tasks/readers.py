"""Readers for local question files: rows as plain dicts, plus where each row came from.

Supported: `.jsonl`, `.json` (a list of objects, or JSON lines), `.csv`, `.parquet` and a folder
written by `datasets.Dataset.save_to_disk`. The schema is not decided here (see
`converters.detect_schema`); each reader only says where row i lives, for error messages.

    table = read_rows(Path("questions.csv"), split="validation")
    table.rows[0], table.locate(0)  # -> ({"id": ..., ...}, "questions.csv:2")
"""

from __future__ import annotations

import ast
import csv
import dataclasses
import io
import json
from pathlib import Path
from typing import Any, Callable

from fem_cli.errors import FemError
from fem_cli.jsonl import TEXT_ENCODING, json_objects


@dataclasses.dataclass(frozen=True)
class RowTable:
    rows: list[dict[str, Any]]
    # Row index -> "file:line" (text formats) or "file: row N" (columnar formats).
    locate: Callable[[int], str]
    # What was read, in words, e.g. "CSV file".
    kind: str


def _json_lines(path: Path, text: str) -> RowTable:
    rows: list[dict[str, Any]] = []
    line_numbers: list[int] = []
    # Split on newlines only: str.splitlines() also splits on U+2028, U+0085, ..., which JSON
    # strings may hold unescaped.
    for line_number, payload in json_objects(path, text.split("\n")):
        rows.append(payload)
        line_numbers.append(line_number)
    return RowTable(rows, lambda i: f"{path}:{line_numbers[i]}", "JSON lines file")


def _read_jsonl(path: Path, split: str) -> RowTable:
    return _json_lines(path, _read_text(path))


def _read_text(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode(TEXT_ENCODING)
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise FemError(f"{path}:{line}: not UTF-8 text") from None


def _read_json(path: Path, split: str) -> RowTable:
    text = _read_text(path)
    if not text.lstrip().startswith("["):
        # Many `.json` question files are JSON lines under another name.
        return _json_lines(path, text)
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as err:
        raise FemError(f"{path}:{err.lineno}: not valid JSON ({err.msg})") from None
    except RecursionError:
        raise FemError(f"{path}: not valid JSON (nested too deeply)") from None
    for index, item in enumerate(payload):
        if not isinstance(item, dict):
            raise FemError(f"{path}: item {index + 1} of the list is not a JSON object")
    return RowTable(payload, lambda i: f"{path}: item {i + 1}", "JSON file")


# CSV has no lists: writers store them as JSON (`["a", "b"]`) or, like pandas, as Python reprs.
_LIST_COLUMNS = ("choices", "labels")


def _decode_cell(cell: str) -> Any:
    try:
        return json.loads(cell)
    except json.JSONDecodeError:
        pass
    try:
        return ast.literal_eval(cell)
    except (ValueError, SyntaxError):
        return cell  # left as text: the converter reports the column as not a list


def _read_csv(path: Path, split: str) -> RowTable:
    rows: list[dict[str, Any]] = []
    line_numbers: list[int] = []
    with io.StringIO(_read_text(path), newline="") as handle:
        reader = csv.DictReader(handle)
        try:
            for record in reader:
                if None in record:  # DictReader's key for cells beyond the header
                    raise FemError(f"{path}:{reader.line_num}: more cells than header columns")
                # An empty cell is how CSV writers store a missing value (e.g. a null subject).
                row: dict[str, Any] = {key: (value if value != "" else None) for key, value in record.items()}
                for column in _LIST_COLUMNS:
                    if isinstance(row.get(column), str):
                        row[column] = _decode_cell(row[column])
                rows.append(row)
                line_numbers.append(reader.line_num)
        except csv.Error as err:
            raise FemError(f"{path}:{reader.line_num}: not valid CSV ({err})") from None
    return RowTable(rows, lambda i: f"{path}:{line_numbers[i]}", "CSV file")


def _read_parquet(path: Path, split: str) -> RowTable:
    import pyarrow  # lazy, like `datasets` below: only parquet sources need it
    import pyarrow.parquet

    try:
        rows = pyarrow.parquet.read_table(path).to_pylist()
    except pyarrow.ArrowException as err:
        raise FemError(f"{path}: not a readable parquet file ({err})") from None
    return RowTable(rows, lambda i: f"{path}: row {i + 1}", "parquet file")


def _read_saved_dataset(path: Path, split: str) -> RowTable:
    import datasets  # lazy: importing it takes about a second

    try:
        loaded = datasets.load_from_disk(str(path))
    except FileNotFoundError:
        raise FemError(f"{path}: a folder, but not one written by `datasets` save_to_disk") from None
    if isinstance(loaded, datasets.DatasetDict):
        if split not in loaded:
            raise FemError(f"{path}: no split {split!r} in this saved DatasetDict (it has {', '.join(loaded)})")
        loaded = loaded[split]
    return RowTable(loaded.to_list(), lambda i: f"{path}: row {i + 1}", "datasets save_to_disk folder")


_READERS: dict[str, Callable[[Path, str], RowTable]] = {
    ".jsonl": _read_jsonl,
    ".json": _read_json,
    ".csv": _read_csv,
    ".parquet": _read_parquet,
}


def read_rows(path: Path, split: str) -> RowTable:
    """Every row of a local file or saved dataset; `split` picks one from a saved DatasetDict."""
    if path.is_dir():
        return _read_saved_dataset(path, split)
    reader = _READERS.get(path.suffix.lower())
    if reader is None:
        raise FemError(
            f"{path}: unsupported file type {path.suffix or '(none)'!r}; "
            f"use {', '.join(_READERS)} or a `datasets` save_to_disk folder"
        )
    return reader(path, split)
