"""The E-step's second half: keep the correct rationales and write the M-step training file.

Reads one or more sample files (shards merge here), recomputes every reward with the current
answer extraction (a better extractor applies to old files), drops unverified samples
(--require-verified: hinted rationales whose answer does not stand without the hint, see
`fem sample --verify`), rationales whose working does not reach their answer (--require-consistent,
read again from the text, see `fem_cli.answers.consistency`), hint leaks, too-short rationales and
duplicate rationales per question, keeps up to K per question, caps the examples per gold label
(--balance-labels, see `balance`), and writes
`TrainExample`s whose prompt is the **hint-free** prompt. Statistics go to `<out>.stats.json`.

    fem filter samples.jsonl --out train.jsonl --max-per-question 2 --require-consistent --balance-labels
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections import Counter, defaultdict
from fractions import Fraction
from pathlib import Path
from typing import Optional

from fem_cli.answers import consistency, find_hint_leak, reward
from fem_cli.config import option
from fem_cli.errors import FemError
from fem_cli.jsonl import check_unique, iter_jsonl_lines, write_json, write_jsonl
from fem_cli.outputs import check_writable
from fem_cli.provenance import provenance
from fem_cli.records import Sample, TrainExample
from fem_cli.runs import stats_path


@dataclasses.dataclass
class FilterConfig:
    samples: list[str] = option([], "Sample files written by `fem sample` (shards of one run merge).", argument=True)
    out: str = option("train.jsonl", "Output training file; statistics go to <out>.stats.json.")
    max_per_question: Optional[int] = option(None, "Keep at most K rationales per question (default: all).")
    min_words: int = option(8, "Drop completions with fewer words (e.g. a bare 'Answer: B').")
    drop_leaks: bool = option(True, "Drop hinted rationales that say they were given the answer.")
    require_verified: bool = option(False, "Keep only verified samples (`fem sample --verify`): hinted rationales whose answer stands without the hint.")
    require_consistent: bool = option(False, "Keep only rationales whose working reaches their answer: numeric choices, the last number before the answer line is the answer's value; text choices, the last sentence naming one choice names the answer's (working that names no choice is dropped too).")
    balance_labels: bool = option(False, "Cap the kept examples per gold label (as shown, after --permute-choices) at the label's share of the questions times the examples kept, rounded up, dropping the extras of questions with another kept example first.")

    def __post_init__(self) -> None:
        if not self.samples:
            raise ValueError("give at least one sample file")
        if self.max_per_question is not None and self.max_per_question < 1:
            raise ValueError(f"max_per_question must be >= 1, got {self.max_per_question}")
        if self.min_words < 0:
            raise ValueError(f"min_words must be >= 0, got {self.min_words}")


def _normalized(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


@dataclasses.dataclass
class FilterStats:
    per_stage: dict[str, Counter] = dataclasses.field(default_factory=lambda: defaultdict(Counter))
    questions: set[str] = dataclasses.field(default_factory=set)
    questions_kept: set[str] = dataclasses.field(default_factory=set)
    # Kept examples per gold label (after --balance-labels), and what balancing did (None: off).
    kept_per_label: dict[str, int] = dataclasses.field(default_factory=dict)
    balance: Optional[dict[str, dict[str, float | int]]] = None

    def as_dict(self) -> dict:
        totals = Counter()
        for counts in self.per_stage.values():
            totals.update(counts)
        return {
            "samples": totals["total"],
            "correct": totals["correct"],
            "kept": totals["kept"],
            "verified": totals["verified"],
            "consistent": totals["consistent"],
            "unverified_dropped": totals["unverified"],
            "inconsistent_dropped": totals["inconsistent"],
            "unread_dropped": totals["unread"],
            "leaks_dropped": totals["leak"],
            "too_short_dropped": totals["too_short"],
            "duplicates_removed": totals["duplicate"],
            "over_cap_dropped": totals["over_cap"],
            "unbalanced_dropped": totals["unbalanced"],
            "kept_per_label": self.kept_per_label,
            "balance": self.balance,
            "questions": len(self.questions),
            "questions_with_kept": len(self.questions_kept),
            "per_stage": {
                stage: {
                    **counts,
                    "kept_rate": counts["kept"] / counts["total"] if counts["total"] else 0.0,
                    # Of the correct samples, the share whose answer stands without the hint.
                    "verified_share": counts["verified"] / counts["correct"] if counts["correct"] else 0.0,
                    # Of the correct samples, the share whose working reaches the gold.
                    "consistent_share": counts["consistent"] / counts["correct"] if counts["correct"] else 0.0,
                }
                for stage, counts in sorted(self.per_stage.items())
            },
        }


def select(samples: list[Sample], cfg: FilterConfig) -> tuple[list[TrainExample], FilterStats]:
    stats = FilterStats()
    seen: dict[str, set[str]] = defaultdict(set)
    kept: list[Sample] = []
    for sample in samples:
        counts = stats.per_stage[f"{sample.sampler}/{sample.stage}"]
        counts["total"] += 1
        stats.questions.add(sample.question_id)
        _, score = reward(sample.text, sample.labels, sample.choices, sample.gold)
        if not score:
            continue
        counts["correct"] += 1
        counts["verified"] += bool(sample.verified)
        consistent = consistency(sample.text, sample.labels, sample.choices)
        counts["consistent"] += consistent is True
        if cfg.require_verified and not sample.verified:
            counts["unverified"] += 1
            continue
        if cfg.require_consistent and consistent is not True:
            counts["inconsistent" if consistent is False else "unread"] += 1
            continue
        if cfg.drop_leaks and sample.hinted and find_hint_leak(sample.text, sample.hint):
            counts["leak"] += 1
            continue
        if len(sample.text.split()) < cfg.min_words:
            counts["too_short"] += 1
            continue
        key = _normalized(sample.text)
        if key in seen[sample.question_id]:
            counts["duplicate"] += 1
            continue
        if cfg.max_per_question is not None and len(seen[sample.question_id]) >= cfg.max_per_question:
            counts["over_cap"] += 1
            continue
        seen[sample.question_id].add(key)
        counts["kept"] += 1
        kept.append(sample)
    if cfg.balance_labels:
        kept, dropped, stats.balance = balance(kept, label_shares(samples))
        for sample in dropped:
            counts = stats.per_stage[f"{sample.sampler}/{sample.stage}"]
            counts["kept"] -= 1
            counts["unbalanced"] += 1
    stats.questions_kept = {sample.question_id for sample in kept}
    stats.kept_per_label = dict(sorted(Counter(sample.gold for sample in kept).items()))
    return [
        TrainExample(
            question_id=sample.question_id,
            prompt=sample.train_prompt,
            completion=sample.text.strip(),
            sampler=sample.sampler,
            stage=sample.stage,
        )
        for sample in kept
    ], stats


def label_shares(samples: list[Sample]) -> dict[str, Fraction]:
    """Each gold label's share of the questions: per question, the share of its draws that show
    that gold (a question's one gold without --permute-choices), averaged over the questions."""
    golds: dict[str, Counter] = defaultdict(Counter)
    for sample in samples:
        golds[sample.question_id][sample.gold] += 1
    shares: dict[str, Fraction] = defaultdict(Fraction)
    for counts in golds.values():
        drawn = sum(counts.values())
        for label, count in counts.items():
            shares[label] += Fraction(count, drawn * len(golds))
    return dict(sorted(shares.items()))


def balance(kept: list[Sample], shares: dict[str, Fraction]) -> tuple[list[Sample], list[Sample], dict[str, dict[str, float | int]]]:
    """(kept, dropped, what was done): each gold label keeps at most ceil(share x len(kept))
    examples, so that training cannot reward a favourite label by seeing it more often than the
    questions do. A label's extras go last in file order first, examples of questions that keep
    another example before any question's last one."""
    caps = {label: math.ceil(share * len(kept)) for label, share in shares.items()}
    per_question = Counter(sample.question_id for sample in kept)
    dropped: set[int] = set()
    dropped_per_label = {}
    for label, cap in caps.items():
        own = [i for i, sample in enumerate(kept) if sample.gold == label]
        excess = len(own) - cap
        for spares_only in (True, False):
            for i in reversed(own):
                if excess <= 0:
                    break
                if i in dropped or (spares_only and per_question[kept[i].question_id] < 2):
                    continue
                dropped.add(i)
                per_question[kept[i].question_id] -= 1
                excess -= 1
        dropped_per_label[label] = max(len(own) - cap, 0)
    info = {"shares": {label: float(share) for label, share in shares.items()}, "caps": caps, "dropped": dropped_per_label}
    return ([s for i, s in enumerate(kept) if i not in dropped], [s for i, s in enumerate(kept) if i in dropped], info)


def run_filter(cfg: FilterConfig) -> tuple[Path, dict]:
    check_writable(cfg.out)
    located = [(path, line, sample) for path in cfg.samples for line, sample in iter_jsonl_lines(path, Sample)]
    # A draw given twice (the same shard passed twice, or a file concatenated onto itself) would
    # be kept twice and weigh double in the M-step. STaR's two stages each number their draws
    # from 0, so the stage is part of a draw's identity; `<id>~swap` copies have their own ids.
    check_unique(
        (((s.question_id, s.stage, s.sample_index), f"{path}:{line}") for path, line, s in located),
        what="draw (question_id, stage, sample_index)",
    )
    samples = [sample for _, _, sample in located]
    if not samples:
        raise FemError(f"no samples in {', '.join(cfg.samples)}")
    if cfg.require_verified and any(sample.verified is None for sample in samples):
        raise FemError(f"--require-verified: {', '.join(cfg.samples)} holds samples never verified (sample with --verify)")
    examples, stats = select(samples, cfg)
    summary = stats.as_dict()
    write_json(stats_path(cfg.out), {**summary, **provenance(cfg, inputs=cfg.samples)})
    if not examples:
        raise FemError(
            f"no sample survived the filter ({summary['correct']} correct of {len(samples)}, "
            f"see {stats_path(cfg.out)}); nothing to train on"
        )
    write_jsonl(cfg.out, examples)
    return Path(cfg.out), summary
