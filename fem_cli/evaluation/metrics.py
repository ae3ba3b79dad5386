"""Scores of an evaluation: accuracy with a bootstrap interval, majority vote, per-subject averages.

Pure functions over plain lists, shared by both protocols and easy to check by hand.

    accuracy_summary([True, False, True, True], seed=0)
    # -> {"value": 0.75, "ci_low": 0.25, "ci_high": 1.0, "n": 4}
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any, Optional, Sequence

import numpy as np

BOOTSTRAP_RESAMPLES = 1000
CONFIDENCE_LEVEL = 0.95


def accuracy(correct: Sequence[bool]) -> float:
    return sum(correct) / len(correct) if correct else 0.0


def bootstrap_interval(
    correct: Sequence[bool], seed: int, resamples: int = BOOTSTRAP_RESAMPLES, level: float = CONFIDENCE_LEVEL
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of `correct`: resample the questions with
    replacement `resamples` times and take the middle `level` of the resampled accuracies."""
    if not correct:
        return 0.0, 0.0
    values = np.asarray(correct, dtype=np.float64)
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(resamples, len(values)))].mean(axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def accuracy_summary(correct: Sequence[bool], seed: int, resamples: int = BOOTSTRAP_RESAMPLES) -> dict[str, Any]:
    low, high = bootstrap_interval(correct, seed, resamples)
    return {"value": accuracy(correct), "ci_low": low, "ci_high": high, "n": len(correct)}


def majority_vote(answers: Sequence[Optional[str]]) -> tuple[Optional[str], float]:
    """(most voted answer, its share of all samples). Unparseable samples (None) do not vote but
    count in the share; ties go to the answer that appeared first, so the vote is deterministic."""
    votes = Counter(answer for answer in answers if answer is not None)
    if not votes:
        return None, 0.0
    # Counter keeps first-insertion order and max() returns the first maximum: first occurrence wins.
    winner = max(votes, key=lambda answer: votes[answer])
    return winner, votes[winner] / len(answers)


def subject_breakdown(correct: Sequence[bool], subjects: Sequence[Optional[str]]) -> dict[str, Any] | None:
    """Per-subject accuracy with the macro (mean over subjects) and micro (over questions)
    averages; None when no question carries a subject. Questions without one go under "none"."""
    if all(subject is None for subject in subjects):
        return None
    grouped: dict[str, list[bool]] = defaultdict(list)
    for is_correct, subject in zip(correct, subjects):
        grouped[subject or "none"].append(is_correct)
    per_subject = {name: {"n": len(values), "accuracy": accuracy(values)} for name, values in sorted(grouped.items())}
    return {
        "subjects": per_subject,
        "macro_accuracy": sum(entry["accuracy"] for entry in per_subject.values()) / len(per_subject),
        "micro_accuracy": accuracy(correct),
    }
