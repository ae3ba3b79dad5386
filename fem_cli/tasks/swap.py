"""Swap augmentation for two-choice (judge) questions: each pair is shown in both orders.

Judges favour a position; showing every pair both ways cancels that bias in the E-step's training
data and lets evaluation measure it. It is circular evaluation with K = 2 rotations on two
choices (`fem_cli.tasks.rotation`): the swapped copy of question `x` has id `x~swap`, the two
choices reversed, the same labels, and the answer moved with its response (A <-> B). Augmentation
runs after sharding, and each question is followed by its copy, so both orders of a pair always
land in the same shard.

    swap_augment([q])  # -> [q, q with choices reversed, answer flipped, id "<q.id>~swap"]
"""

from __future__ import annotations

from typing import Sequence

from fem_cli.errors import FemError
from fem_cli.records import Question
from fem_cli.tasks.rotation import SWAP_SUFFIX, rotated

__all__ = ["SWAP_SUFFIX", "check_two_choices", "swap_augment", "swapped"]


def check_two_choices(question: Question) -> None:
    if len(question.choices) != 2:
        raise FemError(
            f"question {question.id}: --swap-augment needs two-choice questions, this one has {len(question.choices)}"
        )


def swapped(question: Question) -> Question:
    """`question` with its two choices in the other order (FemError unless it has two)."""
    check_two_choices(question)
    return rotated(question, 1)


def swap_augment(questions: Sequence[Question]) -> list[Question]:
    """Each question followed by its swapped copy. `fem sample` shards the questions first and
    augments each shard (never the reverse: shard i/n of this list would split pairs), so a pair
    never spans two shards."""
    return [variant for question in questions for variant in (question, swapped(question))]
