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
import hashlib
import string
from typing import Any, Callable, Iterable, Iterator, Mapping

from pydantic import ValidationError

from fem_cli.errors import FemError
from fem_cli.jsonl import check_unique, describe_validation_error
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


# tldr_comparisons' splits are original ones of the release: both live in the hub's validation split.
TLDR_ORIGINAL_SPLITS = {"train": "valid2", "validation": "valid1"}
TLDR_QUESTION = "Which summary is better?"


def _summarize_from_feedback(rows: Iterable[Row], split: str) -> Iterator[Question]:
    """`openai/summarize_from_feedback` (comparisons): a post and two summaries, `choice` 0/1.
    ids as in ../shared/data: `<batch>-<original split>-<post id>-<row index in the batch, 4 digits>`.
    Split `train` keeps the rows of the original valid2, `validation` those of valid1 (as the
    normalized files); any other split name keeps every row."""
    wanted = TLDR_ORIGINAL_SPLITS.get(split)
    seen: collections.Counter[str] = collections.Counter()
    for row in rows:
        batch, original = str(row["batch"]), str(row["split"])
        index = seen[batch]
        seen[batch] += 1
        if wanted is not None and original != wanted:
            continue
        info, summaries, choice = row["info"], row["summaries"], row["choice"]
        if len(summaries) != 2:
            raise ValueError(f"expected 2 summaries, got {len(summaries)}")
        if choice not in (0, 1) or isinstance(choice, bool):
            raise ValueError(f"choice {choice!r} is not 0 or 1")
        lines = []
        if info.get("subreddit"):
            lines.append(f"SUBREDDIT: r/{info['subreddit']}")
        if info.get("title"):
            lines.append(f"TITLE: {info['title']}")
        # CNN/DM rows have an article instead of a post.
        lines.append(f"POST: {info['post']}" if info.get("post") is not None else f"ARTICLE: {info['article']}")
        yield Question(
            id=f"{batch}-{original}-{info['id']}-{index:04d}",
            question="\n".join(lines) + f"\n\n{TLDR_QUESTION}",
            choices=[summary["text"].lstrip() for summary in summaries],
            labels=["A", "B"],
            answer="AB"[choice],
            subject=info.get("subreddit") or info.get("site"),
        )


JUDGE_QUESTION = "Which response is better?"
MT_BENCH_SUBJECT = "mtbench_human"
# The split rule of judge_pairs (../shared/data/SOURCES.md): by prompt, so items sharing a prompt
# never cross splits; 20 % of prompts go to validation.
_JUDGE_SPLIT_SALT = "fem-v2-judge-split-0"


def judge_split(subject: str, prompt: str) -> str:
    digest = hashlib.sha256(f"{_JUDGE_SPLIT_SALT}|{subject}|{prompt}".encode("utf-8")).hexdigest()
    return "validation" if int(digest[:8], 16) % 1000 < 200 else "train"


def _first_turn(conversation: Iterable[Row], role: str) -> str:
    for message in conversation:
        if message["role"] == role:
            return str(message["content"])
    raise ValueError(f"conversation has no {role} message")


def _mt_bench_human_judgments(rows: Iterable[Row], split: str) -> Iterator[Question]:
    """`lmsys/mt_bench_human_judgments` (split `human`): one human vote per row. Kept: votes on the
    first turn with a winner (ties dropped); instruction = the first user message, responses =
    each conversation's first assistant message. ids `mtbench_human-<row index, 4 digits>`.
    Split `train`/`validation` applies judge_pairs' prompt-hash rule; any other keeps every row."""
    for index, row in enumerate(rows):
        winner = row["winner"]
        if winner not in ("model_a", "model_b", "tie", "tie (bothbad)"):
            raise ValueError(f"winner {winner!r} is not model_a, model_b, tie or tie (bothbad)")
        if int(row["turn"]) != 1 or winner.startswith("tie"):
            continue
        instruction = _first_turn(row["conversation_a"], "user")
        if split in ("train", "validation") and judge_split(MT_BENCH_SUBJECT, instruction) != split:
            continue
        yield Question(
            id=f"{MT_BENCH_SUBJECT}-{index:04d}",
            question=f"Instruction:\n{instruction}\n\n{JUDGE_QUESTION}",
            choices=[_first_turn(row["conversation_a"], "assistant"), _first_turn(row["conversation_b"], "assistant")],
            labels=["A", "B"],
            answer="A" if winner == "model_a" else "B",
            subject=MT_BENCH_SUBJECT,
        )


NORMALIZED = Schema("normalized", frozenset({"id", "question", "choices", "labels", "answer"}), _normalized)
AI2_ARC = Schema("ai2_arc", frozenset({"id", "question", "choices", "answerKey"}), _labelled_choices("question"))
OPENBOOKQA = Schema("openbookqa", frozenset({"id", "question_stem", "choices", "answerKey"}), _labelled_choices("question_stem"))
MMLU = Schema("mmlu", frozenset({"question", "subject", "choices", "answer"}), _mmlu)
SUMMARIZE_FROM_FEEDBACK = Schema(
    "summarize_from_feedback", frozenset({"info", "summaries", "choice", "batch", "split"}), _summarize_from_feedback
)
MT_BENCH_HUMAN_JUDGMENTS = Schema(
    "mt_bench_human_judgments",
    frozenset({"question_id", "model_a", "model_b", "winner", "conversation_a", "conversation_b", "turn"}),
    _mt_bench_human_judgments,
)
# The schemas a question file is recognised by (`detect_schema`), the normalized one first.
CONVERTERS: dict[str, Schema] = {
    schema.name: schema
    for schema in (NORMALIZED, AI2_ARC, OPENBOOKQA, MMLU, SUMMARIZE_FROM_FEEDBACK, MT_BENCH_HUMAN_JUDGMENTS)
}


def detect_schema(columns: Iterable[str], where: str) -> Schema:
    """The first schema whose columns the rows have (the normalized one is tried first)."""
    present = set(columns)
    for schema in CONVERTERS.values():
        if schema.columns <= present:
            return schema
    known = "; ".join(f"{s.name}: {', '.join(sorted(s.columns))}" for s in CONVERTERS.values())
    # A column name may hold any character, a line break too: odd ones are shown quoted, so the
    # message stays one line.
    shown = ", ".join(name if name.isprintable() else repr(name) for name in sorted(present))
    raise FemError(f"{where}: columns {shown or '(none)'} match no known schema ({known})")


def convert_rows(schema: Schema, rows: list[Row], split: str, locate: Callable[[int], str]) -> list[Question]:
    """All rows as Questions; the first bad row, or a repeated id, raises FemError at `locate(row index)`."""
    questions: list[Question] = []
    positions: list[int] = []
    position = 0  # the row being converted (some converters skip rows, so not len(questions))

    def tracked() -> Iterator[Row]:
        nonlocal position
        for position, row in enumerate(rows):  # noqa: B007 - position is read on errors
            yield row

    try:
        for question in schema.convert(tracked(), split):
            questions.append(question)
            positions.append(position)
    except KeyError as err:
        raise FemError(f"{locate(position)}: missing column {err} for the {schema.name} schema") from None
    except ValidationError as err:
        raise FemError(f"{locate(position)}: not a valid question: {describe_validation_error(err)}") from None
    except (TypeError, ValueError) as err:
        raise FemError(f"{locate(position)}: not a valid {schema.name} row: {err}") from None
    check_unique((question.id, locate(row)) for question, row in zip(questions, positions))
    return questions
