"""Choice orders of a multiple-choice question: circular rotations (MMBench's CircularEval) and
seeded permutations. Labels stay in place (`A, B, ...`), the choices' contents move, and the gold
label follows its content, so a model that always answers one label cannot score in every order.

An order is a list of original choice indices: `order[i]` is the choice shown at position i.
Rotation r of n choices is the order `[(i + r) % n for i in range(n)]`; its question id is
`<id>~rot<r>` (`<id>~swap` for the one rotation of a two-choice question: the judge's swap).

    circular([q], 4)          # q and its rotations 1-3
    permuted(q, [2, 0, 1, 3]) # the same question id, choices reordered, answer moved with them
"""

from __future__ import annotations

import random
from typing import Sequence

from fem_cli.records import Question

SWAP_SUFFIX = "~swap"
ROTATION_MARK = "~rot"


def rotation_order(size: int, shift: int) -> list[int]:
    return [(i + shift) % size for i in range(size)]


def random_order(size: int, seed: int) -> list[int]:
    order = list(range(size))
    random.Random(seed).shuffle(order)
    return order


def permuted(question: Question, order: Sequence[int], question_id: str | None = None) -> Question:
    """`question` with its choices shown in `order`; the answer label moves with its content."""
    if sorted(order) != list(range(len(question.choices))):
        raise ValueError(f"question {question.id}: {list(order)} is not an order of {len(question.choices)} choices")
    gold = question.labels.index(question.answer)
    return question.model_copy(
        update={
            "id": question_id or question.id,
            "choices": [question.choices[i] for i in order],
            "answer": question.labels[list(order).index(gold)],
        }
    )


def rotation_id(question: Question, shift: int) -> str:
    if shift == 0:
        return question.id
    return question.id + (SWAP_SUFFIX if len(question.choices) == 2 else f"{ROTATION_MARK}{shift}")


def rotated(question: Question, shift: int) -> Question:
    """Rotation `shift` of `question` (shift 0 is the question itself, id unchanged)."""
    return permuted(question, rotation_order(len(question.choices), shift), rotation_id(question, shift))


def rotations(question: Question, k: int) -> list[tuple[Question, list[int]]]:
    """The first k rotations of `question` with their orders; a question with fewer than k
    choices gets all of its own (more would repeat an order)."""
    size = len(question.choices)
    return [(rotated(question, shift), rotation_order(size, shift)) for shift in range(min(k, size))]


def content_index(order: Sequence[int], labels: Sequence[str], label: str | None) -> int | None:
    """The original index of the choice shown under `label` (None for an unparsed answer)."""
    return order[list(labels).index(label)] if label in labels else None
