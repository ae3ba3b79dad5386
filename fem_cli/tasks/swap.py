"""Swap augmentation for two-choice (judge) questions: each pair is shown in both orders.

Judges favour a position; showing every pair both ways cancels that bias in the E-step's training
data and lets evaluation measure it. The swapped copy of question `x` has id `x~swap`, the two
choices reversed, the same labels, and the answer moved with its response (A <-> B).

    swap_augment([q])  # -> [q, q with choices reversed, answer flipped, id "<q.id>~swap"]
"""

from __future__ import annotations

from typing import Mapping, Optional, Sequence

from fem_cli.errors import FemError
from fem_cli.records import Question

SWAP_SUFFIX = "~swap"


def swapped(question: Question) -> Question:
    """`question` with its two choices in the other order (FemError unless it has two)."""
    if len(question.choices) != 2:
        raise FemError(
            f"question {question.id}: --swap-augment needs two-choice questions, this one has {len(question.choices)}"
        )
    first, second = question.labels
    return question.model_copy(
        update={
            "id": question.id + SWAP_SUFFIX,
            "choices": list(reversed(question.choices)),
            "answer": second if question.answer == first else first,
        }
    )


def swap_augment(questions: Sequence[Question]) -> list[Question]:
    """Each question followed by its swapped copy. `fem sample` shards the questions first and
    augments each shard (never the reverse: shard i/n of this list would split pairs), so a pair
    never spans two shards."""
    return [variant for question in questions for variant in (question, swapped(question))]


def verdict_positions(
    questions: Sequence[Question], predictions: Mapping[str, Optional[str]]
) -> list[tuple[Optional[int], Optional[int]]]:
    """For every pair present in both orders: the position (0 = first shown) of the verdict in
    the original order and in the swapped order, None where the answer did not parse."""
    by_id = {question.id: question for question in questions}
    pairs = []
    for question in questions:
        partner = by_id.get(question.id + SWAP_SUFFIX)
        if question.id.endswith(SWAP_SUFFIX) or partner is None:
            continue
        pairs.append((_position(question, predictions.get(question.id)), _position(partner, predictions.get(partner.id))))
    return pairs


def _position(question: Question, prediction: Optional[str]) -> Optional[int]:
    return question.labels.index(prediction) if prediction in question.labels else None
