"""Read a run folder into per-iteration figures: the data behind `fem report` and the loop's view.

    iterations = collect_run(Path("runs/demo"))
    iterations[1].accuracy["arith"]  # {"value": 0.41, "ci_low": ..., "ci_high": ..., "n": 200}
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from fem_cli.errors import FemError
from fem_cli.runs import RUN_FILE, results_path, run_file, stage_output, stats_path, summary_path


@dataclasses.dataclass
class IterationFigures:
    iteration: int
    # task -> {"value", "ci_low", "ci_high", "n"}
    accuracy: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)
    # task -> the rest of that task's metrics (parse failures, calibration, ...)
    metrics: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    acceptance_rate: float | None = None
    # Share of the accepted samples whose answer stands without the hint (`fem sample --verify`).
    verified_share: float | None = None
    # Share of the accepted samples whose working reaches their answer (None: older summaries).
    consistent_share: float | None = None
    mean_rationale_tokens: float | None = None
    samples: int | None = None
    kept: int | None = None
    questions_with_kept: int | None = None


def read_json(path: Path) -> dict[str, Any] | None:
    """A stage's JSON record, or None when the stage has not written it."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise FemError(f"{path}:{err.lineno}: not valid JSON ({err.msg})") from None


def read_run(run_dir: Path) -> dict[str, Any]:
    record = read_json(run_file(run_dir))
    if record is None:
        raise FemError(f"{run_dir}: not a fem run folder (no {RUN_FILE})")
    return record


def collect_run(run_dir: Path) -> list[IterationFigures]:
    """Figures of every iteration that has any finished output, in order."""
    record = read_run(run_dir)
    iterations = []
    for k in range(int(record["config"]["iterations"]) + 1):
        figures = IterationFigures(iteration=k)
        results = read_json(results_path(stage_output(run_dir, k, "evaluate")))
        if results:
            for task, entry in results["tasks"].items():
                figures.accuracy[task] = entry["metrics"]["accuracy"]
                figures.metrics[task] = entry["metrics"]
        summary = read_json(summary_path(stage_output(run_dir, k, "sample")))
        if summary:
            stages = summary["stages"].values()
            drawn = sum(s["samples"] for s in stages)
            figures.samples = drawn
            figures.acceptance_rate = sum(s["accepted"] for s in stages) / drawn if drawn else 0.0
            accepted = sum(s["accepted"] for s in stages)
            if accepted and all("verified" in s for s in stages):
                figures.verified_share = sum(s["verified"] for s in stages) / accepted
            if accepted and all("consistent" in s for s in stages):
                figures.consistent_share = sum(s["consistent"] for s in stages) / accepted
            # Written stages (reference solutions) have no length in tokens: None, not 0.
            generated = [s for s in stages if s["mean_rationale_tokens"] is not None]
            counted = sum(s["samples"] for s in generated)
            figures.mean_rationale_tokens = (
                sum(s["mean_rationale_tokens"] * s["samples"] for s in generated) / counted if counted else None
            )
        stats = read_json(stats_path(stage_output(run_dir, k, "filter")))
        if stats:
            figures.kept = stats["kept"]
            figures.questions_with_kept = stats["questions_with_kept"]
        if results or summary or stats:
            iterations.append(figures)
    return iterations
