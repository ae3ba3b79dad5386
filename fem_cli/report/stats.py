"""Paired statistics for two runs scored on the same questions: the accuracy difference with a
paired bootstrap interval, the exact McNemar test, Holm's correction, and the spread over seeds.

Pure functions over plain sequences (scipy does the resampling and the binomial test).

    paired_bootstrap([1, 1, 0, 1], [0, 1, 0, 0], seed=0)  # -> (low, high) of mean(a) - mean(b)
    mcnemar_exact(a_only=9, b_only=2)                      # -> 0.0654: P(split this uneven | fair coin)
    holm([0.01, 0.04, 0.03])                               # -> [0.03, 0.06, 0.06]
"""

from __future__ import annotations

import statistics
from typing import Sequence

import numpy as np
from scipy import stats

BOOTSTRAP_RESAMPLES = 9999
CONFIDENCE_LEVEL = 0.95
SIGNIFICANCE_LEVEL = 0.05


def _difference_of_means(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    return a.mean(axis=axis) - b.mean(axis=axis)


def paired_bootstrap(
    a: Sequence[float], b: Sequence[float], seed: int,
    resamples: int = BOOTSTRAP_RESAMPLES, level: float = CONFIDENCE_LEVEL,
) -> tuple[float, float]:
    """Percentile interval of mean(a) - mean(b), resampling the pairs (a[i], b[i]) together.

    Resampling pairs keeps what the two runs share per question (its difficulty), so the interval
    is much narrower than one built from two independent per-run intervals. Percentile rather than
    BCa: BCa is undefined when every pair has the same difference (e.g. two identical runs)."""
    if len(a) != len(b):
        raise ValueError(f"paired samples differ in length: {len(a)} and {len(b)}")
    if len(a) < 2:
        raise ValueError(f"a paired bootstrap needs at least 2 pairs, got {len(a)}")
    result = stats.bootstrap(
        (np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)),
        _difference_of_means,
        paired=True,
        vectorized=True,
        n_resamples=resamples,
        confidence_level=level,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def mcnemar_exact(a_only: int, b_only: int) -> float:
    """Exact McNemar p-value (two-sided): the discordant pairs, A right and B wrong (`a_only`)
    against the reverse (`b_only`), tested against a fair coin. 1.0 when there are none."""
    discordant = a_only + b_only
    if discordant == 0:
        return 1.0
    return float(stats.binomtest(a_only, discordant, 0.5).pvalue)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values (in the input order): the i-th smallest p times (m - i),
    made monotone and capped at 1. Controls the chance of any false positive in the family at the
    level compared against. Written out because scipy has only Benjamini–Hochberg (an FDR bound)."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[index]))
        adjusted[index] = running
    return adjusted


def seed_spread(values: Sequence[float]) -> tuple[float, float | None]:
    """(mean, sample standard deviation) over seeds; the deviation is None for a single seed."""
    if not values:
        raise ValueError("no values")
    mean = statistics.fmean(values)
    return mean, (statistics.stdev(values) if len(values) > 1 else None)
