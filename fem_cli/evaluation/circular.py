"""What a label prior cannot fake: the answer distribution against the best constant answer, and
circular evaluation (`--rotations K`: every question asked in K rotations of its choices, labels in
place, contents moved, the gold following its content).

    presented = present(questions, k=4)         # each question, then its rotations 1..3
    metrics = prior_metrics(records, presented, seed=0, resamples=1000)
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from typing import Any, Sequence

from fem_cli.evaluation.metrics import Answer, circular_summary, constant_baseline, gain_over_constant, label_counts
from fem_cli.records import EvalRecord, Question
from fem_cli.tasks.rotation import content_index, rotations

# Why results.json marks a loglik rotation as a no-op.
LOGLIK_NO_OP = (
    "loglik continuations are the choice texts and the context does not show the choices: "
    "a rotation only reorders the same scores, so each question was scored once"
)


@dataclasses.dataclass(frozen=True)
class Presentation:
    """One way a question is put: the (rotated) question, its original id and its choice order."""

    question: Question
    base_id: str
    order: list[int]


def present(questions: Sequence[Question], k: int) -> list[Presentation]:
    """Each question followed by its rotations 1..k-1 (k = 1: the questions as they are; a
    question with fewer than k choices gets all of its rotations)."""
    return [Presentation(q, question.id, order) for question in questions for q, order in rotations(question, k)]


def loglik_rotation_is_no_op(task: str, questions: Sequence[Question]) -> bool:
    """True when the loglik format scores choice texts after a context that does not list them
    (ARC, OpenBookQA): rotating the choices then changes nothing but their order."""
    from fem_cli.evaluation.loglik import choice_request  # lazy: imports torch

    for question in questions:
        if len(question.choices) < 2:
            continue
        request, turned = choice_request(task, question), choice_request(task, rotations(question, 2)[1][0])
        if request.context != turned.context or sorted(request.choices) != sorted(turned.choices):
            return False
        if request.choices == list(question.labels):  # labels scored: their meaning moved
            return False
    return True


def prior_metrics(
    records: Sequence[EvalRecord], presented: Sequence[Presentation], seed: int, resamples: int
) -> dict[str, Any]:
    """`predictions` and `gold` (counts per label, `unparsed`), `constant_baseline`,
    `gain_over_constant` (accuracy - constant baseline, bootstrap over questions) and, with more
    than one rotation, the circular metrics (see `metrics.circular_summary`)."""
    labels = list(dict.fromkeys(label for p in presented for label in p.question.labels))
    groups: dict[str, list[Answer]] = defaultdict(list)
    for record, shown in zip(records, presented):
        content = content_index(shown.order, shown.question.labels, record.prediction)
        groups[shown.base_id].append(Answer(record.correct, record.gold, content))
    grouped = list(groups.values())
    metrics: dict[str, Any] = {
        "predictions": label_counts([record.prediction for record in records], labels),
        "gold": label_counts([record.gold for record in records], labels),
        "constant_baseline": constant_baseline([record.gold for record in records]),
        "gain_over_constant": gain_over_constant(grouped, seed, resamples),
    }
    if any(len(group) > 1 for group in grouped):
        metrics.update(circular_summary(grouped, seed, resamples))
    return metrics
