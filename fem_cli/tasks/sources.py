"""Load a task's questions from the first source that has them, as validated `Question`s.

`source` is a task name (`arc_easy`, `mmlu:anatomy`, see `fem tasks`) or a path to a local file.
A task name is read from the data dir (the `data_dir` argument, else `$FEM_DATA_DIR`), laid out
as `DIR/<task>/<split>.jsonl`, and from the Hugging Face hub when no data dir is set. A path is
read in any supported format (see `fem_cli.tasks.readers`) and any known schema.

    loaded = load_questions("arc_easy", "validation", data_dir="../shared/data", limit=50, shuffle=True)
    loaded.source  # -> "local normalized file ../shared/data/arc_easy/validation.jsonl"

`QuestionSource` is the same choice as a config part (`fem sample`, `fem evaluate`).
"""

from __future__ import annotations

import dataclasses
import os
import random
from pathlib import Path
from typing import Optional

from fem_cli.config import did_you_mean, option
from fem_cli.errors import FemError
from fem_cli.jsonl import check_unique, iter_jsonl_lines
from fem_cli.records import Question
from fem_cli.tasks.converters import convert_rows, detect_schema
from fem_cli.tasks.readers import read_rows
from fem_cli.tasks.registry import TASKS, TaskSpec, get_task

DATA_DIR_ENV = "FEM_DATA_DIR"


@dataclasses.dataclass(frozen=True)
class LoadedQuestions:
    questions: list[Question]
    # The task name, or the file stem when read from a path.
    task: str
    # Where the questions came from, in words (printed and stored in run records).
    source: str
    # The file or folder read, for hashing; None for the hub.
    path: Path | None


def _check_split(spec: TaskSpec, split: str) -> None:
    if split not in spec.splits:
        raise FemError(
            f"task {spec.name} has no split {split!r}{did_you_mean(split, list(spec.splits))}; "
            f"its splits are {', '.join(spec.splits)}"
        )


def _from_data_dir(spec: TaskSpec, split: str, directory: Path, origin: str) -> LoadedQuestions:
    path = directory / spec.folder / f"{split}.jsonl"
    if not path.is_file():
        # No fallback to the hub: a data dir was asked for, so a silent download would hide a typo.
        raise FemError(
            f"{path}: no such file (the data dir {directory}, from {origin}, has no {spec.folder}/{split}.jsonl)"
        )
    source = f"local normalized file {path}"
    if spec.subject is not None:
        source += f", subject {spec.subject}"
    located = list(iter_jsonl_lines(path, Question))
    check_unique((question.id, f"{path}:{line}") for line, question in located)
    return LoadedQuestions([question for _, question in located], spec.name, source, path)


def _from_hub(spec: TaskSpec, split: str) -> LoadedQuestions:
    import datasets  # lazy: importing it takes about a second

    hub_split = spec.hub_splits.get(split, split)
    source = f"Hugging Face hub {spec.hub_id} ({spec.hub_config}), split {hub_split}"
    if hub_split != split:
        source += f" (the rows of {spec.name}'s {split} split)"
    try:
        dataset = datasets.load_dataset(spec.hub_id, spec.hub_config, split=hub_split)
    except Exception as err:  # noqa: BLE001 - offline, auth, renamed repo: all one message to the user
        reason = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise FemError(
            f"could not load {source}: {type(err).__name__}: {reason} "
            f"(offline? point --data-dir or ${DATA_DIR_ENV} at the normalized files)"
        ) from None
    questions = convert_rows(spec.converter, dataset.to_list(), split, lambda i: f"{source}: row {i + 1}")
    return LoadedQuestions(questions, spec.name, source, None)


def _from_task(spec: TaskSpec, split: str, data_dir: str | Path | None) -> LoadedQuestions:
    _check_split(spec, split)
    if spec.generator is not None:
        return LoadedQuestions(spec.generator(split), spec.name, f"built-in generated task {spec.name}, split {split}", None)
    if data_dir is not None:
        loaded = _from_data_dir(spec, split, Path(data_dir), "the data_dir argument")
    elif os.environ.get(DATA_DIR_ENV):
        loaded = _from_data_dir(spec, split, Path(os.environ[DATA_DIR_ENV]), f"${DATA_DIR_ENV}")
    else:
        loaded = _from_hub(spec, split)
    if spec.subject is None:
        return loaded
    kept = [question for question in loaded.questions if question.subject == spec.subject]
    return dataclasses.replace(loaded, questions=kept)


def _from_path(path: Path, split: str) -> LoadedQuestions:
    table = read_rows(path, split)
    if not table.rows:
        return LoadedQuestions([], path.stem, f"local {table.kind} {path}", path)
    schema = detect_schema(table.rows[0].keys(), table.locate(0))
    questions = convert_rows(schema, table.rows, split, table.locate)
    return LoadedQuestions(questions, path.stem, f"local {table.kind} {path} ({schema.name} schema)", path)


def _load_all(source: str, split: str, data_dir: str | Path | None) -> LoadedQuestions:
    # Task names win over paths, so a folder called `arc_easy` in the working directory (e.g.
    # inside the data dir itself) never shadows the task; write `./arc_easy` to mean the folder.
    if source.partition(":")[0] in TASKS:
        return _from_task(get_task(source), split, data_dir)
    path = Path(source)
    if path.exists():
        return _from_path(path, split)
    if path.suffix or len(path.parts) > 1:
        raise FemError(f"{source}: no such file or folder")
    return _from_task(get_task(source), split, data_dir)  # raises: unknown task, with a did-you-mean


def load_questions(
    source: str,
    split: str,
    data_dir: str | Path | None = None,
    limit: int | None = None,
    shuffle: bool = False,
    seed: int = 0,
) -> LoadedQuestions:
    """Questions of `source` (task name or path) and `split`, optionally a reproducible subset:
    shuffled with `random.Random(seed)` over the full list, then the first `limit`."""
    if limit is not None and limit < 0:
        raise FemError(f"limit must be 0 or more, got {limit}")
    loaded = _load_all(source, split, data_dir)
    questions = list(loaded.questions)
    if shuffle:
        random.Random(seed).shuffle(questions)
    if limit is not None:
        questions = questions[:limit]
    if not questions:
        why = " (limit 0)" if limit == 0 else ""
        raise FemError(f"no questions in {loaded.source}{why}")
    return dataclasses.replace(loaded, questions=questions)


@dataclasses.dataclass
class QuestionSource:
    """Where a command's questions come from, declared once: the configs of `fem sample` and
    `fem evaluate` inherit these fields, so recipes and flags use the same flat names."""

    task: str = option("", "Task name (`fem tasks`) or a path to a question file/folder.")
    split: str = option("validation", "Split of the task.")
    data_dir: Optional[str] = option(None, "Folder with the normalized layout DIR/<task>/<split>.jsonl (else $FEM_DATA_DIR, else the hub).")
    limit: Optional[int] = option(None, "Use only the first N questions of each task (after --shuffle).")
    shuffle: bool = option(False, "Shuffle the questions (with --seed) before --limit.")
    seed: int = option(0, "Seed of the question order and of everything drawn at random (same seed, same output).")

    def __post_init__(self) -> None:
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be >= 1, got {self.limit}")

    def load(self, task: str | None = None) -> LoadedQuestions:
        """The questions of `task` (default: this source's task) as these options select them."""
        return load_questions(
            task or self.task, self.split, data_dir=self.data_dir, limit=self.limit, shuffle=self.shuffle, seed=self.seed
        )
