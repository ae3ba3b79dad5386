"""Converters from each dataset schema (Hugging Face or fem's own) to `Question` records.

Every converter reads a sequence of row dicts (as `datasets` or a JSON/CSV reader gives them) and
yields one Question per row. A file of unknown origin gets its converter from its columns
(`detect_schema`); `convert_rows` turns a bad row into a FemError naming `file:row`.

    schema = detect_schema({"id", "question", "choices", "answerKey"}, "x.jsonl")  # -> ai2_arc
    questions = convert_rows(schema, rows, split="validation", locate=lambda i: f"x.jsonl:{i + 1}")
"""

from __future__ import annotations

import collections
import dataclasses
import string
from typing import Any, Callable, Iterable, Iterator, Mapping

from pydantic import ValidationError

from fem_cli.errors import FemError
from fem_cli.jsonl import describe_validation_error
from fem_cli.records import Question

Row = Mapping[str, Any]


@dataclasses.dataclass(frozen=True)
class Schema:
    name: str
    # The columns a row must have; also how a file's schema is recognised.
    columns: frozenset[str]
    # (rows, split) -> Questions. Whole-sequence, not per row: MMLU ids number rows per subject.
    convert: Callable[[Iterable[Row], str], Iterator[Question]]


def _normalized(rows: Iterable[Row], split: str) -> Iterator[Question]:
    for row in rows:
        yield Question.model_validate(dict(row))


def _labelled_choices(question_column: str) -> Callable[[Iterable[Row], str], Iterator[Question]]:
    """ARC and OpenBookQA: choices {text, label} and an answerKey; labels are kept as given
    (ARC has some items labelled 1-4, and a few with 3 or 5 choices)."""

    def convert(rows: Iterable[Row], split: str) -> Iterator[Question]:
        for row in rows:
            choices = row["choices"]
            yield Question(
                id=str(row["id"]),
                question=row[question_column],
                choices=list(choices["text"]),
                labels=[str(label) for label in choices["label"]],
                answer=str(row["answerKey"]),
            )

    return convert


def _mmlu_answer(value: Any, labels: list[str]) -> str:
    # The hub stores a ClassLabel index (int); CSV readers give it as text, some copies as a letter.
    if isinstance(value, str) and value in labels:
        return value
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(labels):
        return labels[value]
    raise ValueError(f"answer {value!r} is not an index 0-{len(labels) - 1} or one of {labels}")


def _mmlu(rows: Iterable[Row], split: str) -> Iterator[Question]:
    """ids as in ../shared/data: `<split>-<subject>-<row index within the subject, 4 digits>`."""
    seen: collections.Counter[str] = collections.Counter()
    for row in rows:
        subject = row["subject"]
        choices = list(row["choices"])
        labels = list(string.ascii_uppercase[: len(choices)])
        yield Question(
            id=f"{split}-{subject}-{seen[subject]:04d}",
            question=row["question"],
            choices=choices,
            labels=labels,
            answer=_mmlu_answer(row["answer"], labels),
            subject=subject,
        )
        seen[subject] += 1


CONVERTERS: dict[str, Schema] = {
    schema.name: schema
    for schema in (
        Schema("normalized", frozenset({"id", "question", "choices", "labels", "answer"}), _normalized),
        Schema("ai2_arc", frozenset({"id", "question", "choices", "answerKey"}), _labelled_choices("question")),
        Schema(
            "openbookqa", frozenset({"id", "question_stem", "choices", "answerKey"}), _labelled_choices("question_stem")
        ),
        Schema("mmlu", frozenset({"question", "subject", "choices", "answer"}), _mmlu),
    )
}


def detect_schema(columns: Iterable[str], where: str) -> Schema:
    """The first schema whose columns the rows have (the normalized one is tried first)."""
    present = set(columns)
    for schema in CONVERTERS.values():
        if schema.columns <= present:
            return schema
    known = "; ".join(f"{s.name}: {', '.join(sorted(s.columns))}" for s in CONVERTERS.values())
    raise FemError(f"{where}: columns {', '.join(sorted(present)) or '(none)'} match no known schema ({known})")


def convert_rows(schema: Schema, rows: list[Row], split: str, locate: Callable[[int], str]) -> list[Question]:
    """All rows as Questions; the first bad row raises FemError at `locate(row index)`."""
    questions: list[Question] = []
    try:
        for question in schema.convert(rows, split):
            questions.append(question)
    except KeyError as err:
        raise FemError(f"{locate(len(questions))}: missing column {err} for the {schema.name} schema") from None
    except ValidationError as err:
        raise FemError(f"{locate(len(questions))}: not a valid question: {describe_validation_error(err)}") from None
    except (TypeError, ValueError) as err:
        raise FemError(f"{locate(len(questions))}: not a valid {schema.name} row: {err}") from None
    return questions
