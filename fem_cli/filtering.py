"""The E-step's second half: keep the correct rationales and write the M-step training file.

Reads one or more sample files (shards merge here), recomputes every reward with the current
answer extraction (a better extractor applies to old files), drops unverified samples
(--require-verified: hinted rationales whose answer does not stand without the hint, see
`fem sample --verify`), hint leaks, too-short rationales and duplicate rationales per question,
keeps up to K per question, and writes
`TrainExample`s whose prompt is the **hint-free** prompt. Statistics go to `<out>.stats.json`.

    fem filter samples.jsonl --out train.jsonl --max-per-question 2
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Optional

from fem_cli.answers import find_hint_leak, reward
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

    def as_dict(self) -> dict:
        totals = Counter()
        for counts in self.per_stage.values():
            totals.update(counts)
        return {
            "samples": totals["total"],
            "correct": totals["correct"],
            "kept": totals["kept"],
            "verified": totals["verified"],
            "unverified_dropped": totals["unverified"],
            "leaks_dropped": totals["leak"],
            "too_short_dropped": totals["too_short"],
            "duplicates_removed": totals["duplicate"],
            "over_cap_dropped": totals["over_cap"],
            "questions": len(self.questions),
            "questions_with_kept": len(self.questions_kept),
            "per_stage": {
                stage: {
                    **counts,
                    "kept_rate": counts["kept"] / counts["total"] if counts["total"] else 0.0,
                    # Of the correct samples, the share whose answer stands without the hint.
                    "verified_share": counts["verified"] / counts["correct"] if counts["correct"] else 0.0,
                }
                for stage, counts in sorted(self.per_stage.items())
            },
        }


def select(samples: list[Sample], cfg: FilterConfig) -> tuple[list[TrainExample], FilterStats]:
    stats = FilterStats()
    seen: dict[str, set[str]] = defaultdict(set)
    kept: list[TrainExample] = []
    for sample in samples:
        counts = stats.per_stage[f"{sample.sampler}/{sample.stage}"]
        counts["total"] += 1
        stats.questions.add(sample.question_id)
        _, score = reward(sample.text, sample.labels, sample.choices, sample.gold)
        if not score:
            continue
        counts["correct"] += 1
        counts["verified"] += bool(sample.verified)
        if cfg.require_verified and not sample.verified:
            counts["unverified"] += 1
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
        stats.questions_kept.add(sample.question_id)
        kept.append(
            TrainExample(
                question_id=sample.question_id,
                prompt=sample.train_prompt,
                completion=sample.text.strip(),
                sampler=sample.sampler,
                stage=sample.stage,
            )
        )
    return kept, stats


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
