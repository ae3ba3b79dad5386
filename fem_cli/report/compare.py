"""Compare runs in pairs: group seeds, match questions, and test every accuracy difference.

Runs whose resolved configs (run.json) differ only in `seed` (and in the name and folder that
the seed gives them) form one group: a sampler run with several seeds. Two groups are compared at
every iteration and eval task both evaluated, on the seeds both have:

- pairs are matched by (seed, task, question_id): run A with seed s against run B with seed s,
  which shared the base model, every iteration's training subset and the eval questions;
- the resampling unit is the question, not the (seed, question) pair: a question is answered
  under every seed, so its pairs are not independent (an easy question is easy for all seeds).
  Per question, A's and B's outcomes are averaged over seeds (and over the orders of a pair shown
  both ways, `<id>~swap`), and the paired bootstrap resamples questions;
- the exact McNemar test becomes the sign test over questions: questions where A scored higher
  against questions where B did. With one seed these are exactly McNemar's discordant pairs;
- both are conditional on the trained models: they say whether these models differ on the
  population the eval questions come from. Training noise between seeds shows in the per-group
  table (mean and spread over seeds), not in these intervals;
- runs evaluated on different question sets at the same iteration and task are refused: the
  paired test needs the same questions, and the per-run accuracies beside it would otherwise
  describe another set than the difference does.

    groups = group_runs([load_run(Path(p)) for p in ("runs/x-rs-s0", "runs/x-rs-s1", "runs/x-pps-s0", "runs/x-pps-s1")])
    comparisons = compare_groups(groups, seed=0)
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

from fem_cli.errors import FemError
from fem_cli.jsonl import iter_jsonl
from fem_cli.records import EvalRecord
from fem_cli.report.collect import IterationFigures, collect_run, read_json, read_run
from fem_cli.report.stats import BOOTSTRAP_RESAMPLES, SIGNIFICANCE_LEVEL, holm, mcnemar_exact, paired_bootstrap
from fem_cli.runs import results_path, stage_output
from fem_cli.tasks.swap import SWAP_SUFFIX

# Config keys that may differ within a seed group: the seed itself, the name and folder that
# tell seeds apart, what a resumed run may change, and a reused base evaluation (checked to be
# the run's own; `make paper`'s first run has none).
NOT_GROUPING = {"seed", "name", "runs_dir", "restart", "iterations", "base_eval"}
# B of a gain over the base model: the same runs' iteration 0.
BASE_LABEL = "base (iteration 0)"
# Outcomes[iteration][task][question_id] = correct
Outcomes = dict[int, dict[str, dict[str, bool]]]


@dataclasses.dataclass
class LoadedRun:
    folder: Path
    name: str
    seed: int
    config: dict[str, Any]
    figures: list[IterationFigures]
    outcomes: Outcomes
    # iteration -> seconds of all its stages / of its sample stage (from run.json)
    iteration_seconds: dict[int, float]
    sample_seconds: dict[int, float]


@dataclasses.dataclass
class RunGroup:
    label: str
    runs: list[LoadedRun]  # one per seed, ordered by seed

    @property
    def seeds(self) -> list[int]:
        return [run.seed for run in self.runs]

    def by_seed(self) -> dict[int, LoadedRun]:
        return {run.seed: run for run in self.runs}


@dataclasses.dataclass
class PairedComparison:
    task: str
    iteration: int
    a: str  # label of group A; the difference is A - B
    b: str
    seeds: list[int]
    questions: int  # resampling units (questions, a pair shown both ways counting once)
    accuracy_a: float
    accuracy_b: float
    difference: float
    ci_low: float
    ci_high: float
    a_better: int  # questions where A scored higher (one seed: A right, B wrong)
    b_better: int
    p_value: float
    p_holm: float = 1.0

    @property
    def significant(self) -> bool:
        return self.p_holm < SIGNIFICANCE_LEVEL


def _outcomes(run_dir: Path, iterations: int) -> Outcomes:
    outcomes: Outcomes = {}
    for k in range(iterations + 1):
        eval_dir = stage_output(run_dir, k, "evaluate")
        results = read_json(results_path(eval_dir))
        if not results:
            continue
        outcomes[k] = {
            task: {record.question_id: record.correct for record in iter_jsonl(eval_dir / entry["file"], EvalRecord)}
            for task, entry in results["tasks"].items()
        }
    return outcomes


def load_run(run_dir: Path) -> LoadedRun:
    record = read_run(run_dir)
    config = record["config"]
    iteration_seconds: dict[int, float] = defaultdict(float)
    sample_seconds: dict[int, float] = {}
    for key, stage in record.get("stages", {}).items():
        if stage.get("status") != "done":
            continue
        iteration, name = key.split("/")
        iteration_seconds[int(iteration)] += stage["seconds"]
        if name == "sample":
            sample_seconds[int(iteration)] = stage["seconds"]
    iterations = int(config["iterations"])
    return LoadedRun(
        folder=run_dir,
        name=record.get("name", run_dir.name),
        seed=int(config["seed"]),
        config=config,
        figures=collect_run(run_dir),
        outcomes=_outcomes(run_dir, iterations),
        iteration_seconds=dict(iteration_seconds),
        sample_seconds=sample_seconds,
    )


def _label(run: LoadedRun) -> str:
    """The run name without the seed suffix `make paper` adds (`-s<seed>`)."""
    return re.sub(rf"[-_.]s(eed)?-?{run.seed}$", "", run.name) or run.name


def group_runs(runs: list[LoadedRun]) -> list[RunGroup]:
    """Seed groups, in the order their first run was given."""
    groups: dict[str, list[LoadedRun]] = {}
    for run in runs:
        key = json.dumps({k: v for k, v in run.config.items() if k not in NOT_GROUPING}, sort_keys=True, default=str)
        members = groups.setdefault(key, [])
        twin = next((other for other in members if other.seed == run.seed), None)
        if twin is not None:
            raise FemError(
                f"{twin.folder} and {run.folder}: the same config and seed {run.seed}; give one of them "
                "(a second seed needs another --seed)"
            )
        members.append(run)
    labelled: list[RunGroup] = []
    for members in groups.values():
        label = _label(members[0])
        if any(group.label == label for group in labelled):
            label = members[0].name
        labelled.append(RunGroup(label=label, runs=sorted(members, key=lambda run: run.seed)))
    return labelled


def _unit(question_id: str) -> str:
    """The resampling unit of an eval record: a pair shown in both orders is one question."""
    return question_id.removesuffix(SWAP_SUFFIX)


def _matched(a: LoadedRun, b: LoadedRun, iteration: int, task: str) -> list[tuple[str, bool, bool]]:
    """(question_id, A correct, B correct) for every question; FemError on different question sets."""
    first, second = a.outcomes[iteration][task], b.outcomes[iteration][task]
    if first.keys() != second.keys():
        common = len(first.keys() & second.keys())
        raise FemError(
            f"{a.folder} and {b.folder}: iteration {iteration}, task {task}: evaluated on different questions "
            f"({len(first)} and {len(second)}, {common} in common); a paired comparison needs the same "
            "questions: evaluate both with the same eval split, limit and seed"
        )
    return [(qid, first[qid], second[qid]) for qid in sorted(first)]


def compare_pair(a: RunGroup, b: RunGroup, iteration: int, task: str, seed: int, resamples: int) -> PairedComparison | None:
    """A against B at one iteration and task, pooled over their common seeds (None: no seed has
    both evaluated there, or iteration 0 gave identical answers: the same base model)."""
    a_runs, b_runs = a.by_seed(), b.by_seed()
    seeds = [s for s in a.seeds if s in b_runs and task in a_runs[s].outcomes.get(iteration, {})
             and task in b_runs[s].outcomes.get(iteration, {})]
    if not seeds:
        return None
    per_unit: dict[str, list[tuple[bool, bool]]] = defaultdict(list)
    for s in seeds:
        for question_id, first, second in _matched(a_runs[s], b_runs[s], iteration, task):
            per_unit[_unit(question_id)].append((first, second))
    if iteration == 0 and all(x == y for pairs in per_unit.values() for x, y in pairs):
        return None
    return _paired(a.label, b.label, iteration, task, seeds, per_unit, seed, resamples)


def gain_over_base(group: RunGroup, iteration: int, task: str, seed: int, resamples: int) -> PairedComparison | None:
    """A group at one iteration against its own iteration 0 (the base model), paired by seed and
    question (None: no seed has both evaluated)."""
    seeds = [run.seed for run in group.runs if task in run.outcomes.get(iteration, {}) and task in run.outcomes.get(0, {})]
    if not seeds:
        return None
    runs = group.by_seed()
    per_unit: dict[str, list[tuple[bool, bool]]] = defaultdict(list)
    for s in seeds:
        later, base = runs[s].outcomes[iteration][task], runs[s].outcomes[0][task]
        if later.keys() != base.keys():
            raise FemError(
                f"{runs[s].folder}: iteration {iteration} and the base model (iteration 0) were evaluated on "
                f"different {task} questions; a gain over the base needs the same questions"
            )
        for question_id in sorted(later):
            per_unit[_unit(question_id)].append((later[question_id], base[question_id]))
    return _paired(group.label, BASE_LABEL, iteration, task, seeds, per_unit, seed, resamples)


def _paired(
    a: str, b: str, iteration: int, task: str, seeds: list[int], per_unit: dict[str, list[tuple[bool, bool]]],
    seed: int, resamples: int,
) -> PairedComparison:
    """Paired bootstrap interval and exact McNemar test over questions of (A correct, B correct)
    pairs, a question's seeds (and orders) averaged into one unit."""
    units = sorted(per_unit)
    if len(units) < 2:
        raise FemError(f"{a} vs {b}: iteration {iteration}, task {task}: {len(units)} question; a comparison needs at least 2")
    score_a = [sum(x for x, _ in per_unit[u]) / len(per_unit[u]) for u in units]
    score_b = [sum(y for _, y in per_unit[u]) / len(per_unit[u]) for u in units]
    low, high = paired_bootstrap(score_a, score_b, seed=seed, resamples=resamples)
    a_better = sum(x > y for x, y in zip(score_a, score_b))
    b_better = sum(x < y for x, y in zip(score_a, score_b))
    accuracy_a, accuracy_b = sum(score_a) / len(units), sum(score_b) / len(units)
    return PairedComparison(
        task=task, iteration=iteration, a=a, b=b, seeds=seeds, questions=len(units),
        accuracy_a=accuracy_a, accuracy_b=accuracy_b, difference=accuracy_a - accuracy_b,
        ci_low=low, ci_high=high, a_better=a_better, b_better=b_better,
        p_value=mcnemar_exact(a_better, b_better),
    )


def compare_groups(groups: list[RunGroup], seed: int = 0, resamples: int = BOOTSTRAP_RESAMPLES) -> list[PairedComparison]:
    """Every later-given group against every earlier one (`rs star pps` gives star - rs,
    pps - rs, pps - star), at every iteration and task; Holm-adjusted over the whole table."""
    runs = [run for group in groups for run in group.runs]
    iterations = sorted({k for run in runs for k in run.outcomes})
    tasks = dict.fromkeys(task for run in runs for k in sorted(run.outcomes) for task in run.outcomes[k])
    comparisons = []
    for task in tasks:
        for k in iterations:
            for earlier, later in itertools.combinations(groups, 2):
                comparison = compare_pair(later, earlier, k, task, seed, resamples)
                if comparison is not None:
                    comparisons.append(comparison)
    for comparison, adjusted in zip(comparisons, holm([c.p_value for c in comparisons])):
        comparison.p_holm = adjusted
    return comparisons


def gains_over_base(groups: list[RunGroup], seed: int = 0, resamples: int = BOOTSTRAP_RESAMPLES) -> list[PairedComparison]:
    """Every group at every later iteration against its own base model; Holm-adjusted over these."""
    gains = [
        gain
        for group in groups
        for k in sorted({k for run in group.runs for k in run.outcomes if k > 0})
        for task in dict.fromkeys(task for run in group.runs for task in run.outcomes.get(k, {}))
        if (gain := gain_over_base(group, k, task, seed, resamples)) is not None
    ]
    for gain, adjusted in zip(gains, holm([g.p_value for g in gains])):
        gain.p_holm = adjusted
    return gains


@dataclasses.dataclass
class Comparison:
    groups: list[RunGroup]
    tests: list[PairedComparison]  # group against group
    gains: list[PairedComparison]  # group against its own base model


def compare_runs(folders: list[Path], seed: int = 0, resamples: int = BOOTSTRAP_RESAMPLES) -> Comparison:
    groups = group_runs([load_run(folder) for folder in folders])
    return Comparison(groups=groups, tests=compare_groups(groups, seed=seed, resamples=resamples),
                      gains=gains_over_base(groups, seed=seed, resamples=resamples))
