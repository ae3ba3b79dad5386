"""Scores of an evaluation: accuracy with a bootstrap interval, majority vote, per-subject averages,
calibration (ECE, Brier, reliability bins), the answer distribution against the best constant
answer, and circular evaluation (every question in K rotations of its choices).

Pure functions over plain lists, shared by both protocols and easy to check by hand.

    accuracy_summary([True, False, True, True], seed=0)
    # -> {"value": 0.75, "ci_low": 0.25, "ci_high": 1.0, "n": 4}
"""

from __future__ import annotations

import dataclasses
from collections import Counter, defaultdict
from typing import Any, Optional, Sequence

import math

import numpy as np

BOOTSTRAP_RESAMPLES = 1000
CONFIDENCE_LEVEL = 0.95
CALIBRATION_BINS = 15


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


def format_accuracy(summary: dict[str, Any] | None) -> str:
    """An `accuracy_summary` as shown in tables: `41.0% [36.2%, 45.9%]` (empty where there is none)."""
    if not summary:
        return ""
    return f"{summary['value']:.1%} [{summary['ci_low']:.1%}, {summary['ci_high']:.1%}]"


def softmax(values: Sequence[float]) -> list[float]:
    top = max(values)
    exps = [math.exp(v - top) for v in values]
    total = sum(exps)
    return [e / total for e in exps]


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


def label_counts(values: Sequence[Optional[str]], labels: Sequence[str]) -> dict[str, int]:
    """How often each label occurs in `values` (every label listed, in order), plus `unparsed`
    for None: the distribution a label prior shows up in."""
    counts = Counter(values)
    ordered = list(dict.fromkeys([*labels, *sorted(v for v in counts if v is not None)]))
    return {**{label: counts[label] for label in ordered}, "unparsed": counts[None]}


@dataclasses.dataclass(frozen=True)
class Collapse:
    """One label taking far more of the answers than of the golds: a label prior, not reasoning."""

    label: str
    count: int  # answers with this label
    n: int  # evaluated prompts
    gold_share: float  # the label's share of the golds


def label_collapse(predictions: dict[str, int], gold: dict[str, int]) -> Collapse | None:
    """The most given label (the first of a tie) when it takes more than twice its share of the
    golds; where that is out of reach (a label holding a third of the golds or more, e.g. either
    label of a balanced two-choice task), more than halfway from its gold share to every answer.
    None otherwise. Takes `label_counts` of the answers and of the golds; unparsed never collapses."""
    n = sum(gold.values())
    answered = {label: count for label, count in predictions.items() if label != "unparsed"}
    if not n or not answered:
        return None
    label = max(answered, key=lambda name: answered[name])
    golds = gold.get(label, 0)
    if answered[label] <= min(2 * golds, (n + golds) / 2):
        return None
    return Collapse(label, answered[label], n, golds / n)


def constant_baseline(golds: Sequence[str]) -> float:
    """The best accuracy any single constant answer gets: the largest share of one gold label."""
    return max(Counter(golds).values()) / len(golds) if golds else 0.0


@dataclasses.dataclass(frozen=True)
class Answer:
    """One answer to one presentation (rotation) of a question."""

    correct: bool
    gold: str
    content: Optional[int]  # original index of the chosen choice; None when unparsed


def gain_over_constant(groups: Sequence[Sequence[Answer]], seed: int, resamples: int = BOOTSTRAP_RESAMPLES) -> dict[str, Any]:
    """accuracy - constant baseline, with a percentile bootstrap interval that resamples questions
    (all presentations of a question together) and recomputes both terms on each resample."""
    if not groups:
        return {"value": 0.0, "ci_low": 0.0, "ci_high": 0.0, "n": 0}

    def gain(chosen: Sequence[Sequence[Answer]]) -> float:
        answers = [answer for group in chosen for answer in group]
        return accuracy([a.correct for a in answers]) - constant_baseline([a.gold for a in answers])

    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(groups), size=(resamples, len(groups)))
    values = [gain([groups[i] for i in row]) for row in draws]
    tail = (1 - CONFIDENCE_LEVEL) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return {"value": gain(groups), "ci_low": float(low), "ci_high": float(high), "n": len(groups)}


def circular_summary(groups: Sequence[Sequence[Answer]], seed: int, resamples: int = BOOTSTRAP_RESAMPLES) -> dict[str, Any]:
    """Circular evaluation over questions each asked in K rotations (MMBench's CircularEval; a
    question with fewer choices in as many as it has): `circular_accuracy` (correct in every
    rotation, with its bootstrap interval over questions), `mean_accuracy` (over all rotations),
    `per_rotation` accuracy (over the questions that have that rotation), and
    `content_consistency`: among questions whose answers all parse, the share that chose the same
    content every time."""
    k = max((len(group) for group in groups), default=0)
    parsed = [group for group in groups if all(a.content is not None for a in group)]
    consistent = sum(len({a.content for a in group}) == 1 for group in parsed)
    return {
        "rotations": k,
        "circular_accuracy": accuracy_summary([all(a.correct for a in group) for group in groups], seed, resamples),
        "mean_accuracy": accuracy([a.correct for group in groups for a in group]),
        "per_rotation": [accuracy([group[r].correct for group in groups if len(group) > r]) for r in range(k)],
        "content_consistency": {
            "value": consistent / len(parsed) if parsed else 0.0,
            "questions": len(groups),
            "all_parsed": len(parsed),
            "consistent": consistent,
        },
    }


def reliability_bins(confidences: Sequence[float], correct: Sequence[bool], bins: int = CALIBRATION_BINS) -> dict[str, list]:
    """Equal-width bins (0, 1/B], (1/B, 2/B], ..., ((B-1)/B, 1] (confidence 0 goes to the first):
    per bin the count, the accuracy and the mean confidence (None for an empty bin)."""
    members: list[list[int]] = [[] for _ in range(bins)]
    for index, confidence in enumerate(confidences):
        # The tolerance keeps an exact edge such as 2/15 in the bin it closes despite rounding.
        members[min(max(math.ceil(confidence * bins - 1e-9) - 1, 0), bins - 1)].append(index)
    return {
        "edges": [b / bins for b in range(bins + 1)],
        "counts": [len(m) for m in members],
        "accuracy": [sum(correct[i] for i in m) / len(m) if m else None for m in members],
        "confidence": [sum(confidences[i] for i in m) / len(m) if m else None for m in members],
    }


def expected_calibration_error(confidences: Sequence[float], correct: Sequence[bool], bins: int = CALIBRATION_BINS) -> float:
    """ECE = sum over bins b of (n_b / N) * |accuracy_b - mean confidence_b|."""
    table = reliability_bins(confidences, correct, bins)
    total = len(confidences)
    return sum(
        count / total * abs(accuracy - confidence)
        for count, accuracy, confidence in zip(table["counts"], table["accuracy"], table["confidence"])
        if count
    )


def brier_score(confidences: Sequence[float], correct: Sequence[bool]) -> float:
    """Binary Brier score of the chosen answer: mean of (confidence - 1[correct])^2."""
    return sum((c - float(ok)) ** 2 for c, ok in zip(confidences, correct)) / len(confidences) if confidences else 0.0


def multiclass_brier_score(distributions: Sequence[Optional[Sequence[float]]], gold: Sequence[int]) -> float:
    """Brier score over the label distribution: mean over questions of sum_j (p_j - 1[j = gold])^2;
    a question without a distribution (no parseable answer) counts as all-zero probabilities."""
    total = 0.0
    for distribution, answer in zip(distributions, gold):
        if distribution is None:
            total += 1.0
            continue
        total += sum((p - float(j == answer)) ** 2 for j, p in enumerate(distribution))
    return total / len(gold) if gold else 0.0


def calibration_summary(
    confidences: Sequence[float],
    correct: Sequence[bool],
    source: str,
    distributions: Optional[Sequence[Optional[Sequence[float]]]] = None,
    gold: Optional[Sequence[int]] = None,
) -> dict[str, Any]:
    """ECE (15 bins), binary Brier, the bins, which confidence was used (`source`), and the
    multi-class Brier when label distributions are given."""
    summary: dict[str, Any] = {
        "confidence": source,
        "ece": expected_calibration_error(confidences, correct),
        "brier": brier_score(confidences, correct),
        "mean_confidence": sum(confidences) / len(confidences) if confidences else 0.0,
        "bins": reliability_bins(confidences, correct),
    }
    if distributions is not None and gold is not None:
        summary["brier_multiclass"] = multiclass_brier_score(distributions, gold)
    return summary
