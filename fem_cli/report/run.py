"""`run_report(cfg)`: tables (rich and Markdown) and PNG plots of one or more runs, each run's gain
over its base model; with several runs, also the runs grouped by seed and their paired comparison
(fem_cli.report.compare).

    fem report runs/demo
    fem report runs/qwen-arc_challenge-rs runs/qwen-arc_challenge-star runs/qwen-arc_challenge-pps --out runs/compare
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Optional

from fem_cli.config import option
from fem_cli.jsonl import atomic_write, write_json
from fem_cli.outputs import check_writable
from fem_cli.report.collect import IterationFigures, collect_run, read_run
from fem_cli.report.compare import Comparison, compare_runs
from fem_cli.report.compare_plots import plot_groups
from fem_cli.report.compare_tables import comparison_json, comparison_sections, markdown
from fem_cli.report.plots import plot_prediction_distribution, plot_runs
from fem_cli.report.tables import markdown_table
from fem_cli.report.timing import CAPTION as TIME_CAPTION
from fem_cli.report.timing import HEADER as TIME_HEADER
from fem_cli.report.timing import time_rows


@dataclasses.dataclass
class ReportConfig:
    runs: list[str] = option([], "Run folders written by `fem loop`.", argument=True)
    out: Optional[str] = option(None, "Folder for report.md and the PNGs (default: the run folder when one run, else runs/report).")
    seed: int = option(0, "Seed of the paired bootstrap intervals (same seed, same intervals).")
    resamples: int = option(9999, "Resamples of the paired bootstrap.")

    def __post_init__(self) -> None:
        if not self.runs:
            raise ValueError("give at least one run folder")
        if self.resamples < 100:
            raise ValueError(f"resamples must be >= 100, got {self.resamples}")

    @property
    def out_dir(self) -> Path:
        if self.out:
            return Path(self.out)
        return Path(self.runs[0]) if len(self.runs) == 1 else Path(self.runs[0]).parent / "report"


def records(cfg: ReportConfig) -> dict[str, dict[str, Any]]:
    """Each run's run.json, by run name (the folder where two runs share a name)."""
    found: dict[str, dict[str, Any]] = {}
    for folder in map(Path, cfg.runs):
        record = read_run(folder)
        name = record.get("name", folder.name)
        found[name if name not in found else str(folder)] = record
    return found


def run_report(
    cfg: ReportConfig,
) -> tuple[Path, dict[str, list[IterationFigures]], Comparison, list[list[str]]]:
    """(output folder, each run's figures, their comparison (one run: with its base model only), the
    time table's rows)."""
    out = cfg.out_dir
    check_writable(out, kind="folder")
    found = records(cfg)
    runs = {name: collect_run(folder) for name, folder in zip(found, map(Path, cfg.runs))}
    # Compared before anything is written: runs that cannot be compared leave no half report. One
    # run is compared with its own base model only.
    comparison = compare_runs(list(map(Path, cfg.runs)), cfg.seed, cfg.resamples)
    several = len(cfg.runs) > 1
    pngs = plot_runs(runs, out)
    pngs += [png for name, iterations in runs.items() if (png := plot_prediction_distribution(name, iterations, out))]
    sections = ["# fem report", ""] + comparison_sections(comparison, groups=several)
    if several:
        write_json(out / "comparison.json", comparison_json(comparison))
        group_plot = plot_groups(comparison, out)
        pngs = ([group_plot] if group_plot else []) + pngs
    for name, iterations in runs.items():
        sections += [f"## {name}", "", markdown_table(iterations), ""]
    timing = time_rows(found)
    if timing:
        sections += ["## Where the time went", "", markdown(TIME_HEADER, timing, TIME_CAPTION), ""]
    sections += [f"![{png.stem}]({png.name})" for png in pngs]
    with atomic_write(out / "report.md") as handle:
        handle.write("\n".join(sections) + "\n")
    return out, runs, comparison, timing
