"""comparison.png: per eval task, each seed group's accuracy per iteration, the mean over seeds as a
line and every seed as a dot, so the spread between seeds is seen beside the gap between groups."""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path

from fem_cli.plotting import new_figure, save_png
from fem_cli.report.compare import Comparison


def plot_groups(comparison: Comparison, out: Path) -> Path | None:
    runs = [run for group in comparison.groups for run in group.runs]
    tasks = list(dict.fromkeys(task for run in runs for f in run.figures for task in f.accuracy))
    if not tasks:
        return None
    figure = new_figure((5 * len(tasks), 4))
    axes = figure.subplots(1, len(tasks), squeeze=False)
    for axis, task in zip(axes[0], tasks):
        for group in comparison.groups:
            per_iteration: dict[int, list[float]] = defaultdict(list)
            for run in group.runs:
                for f in run.figures:
                    if task in f.accuracy:
                        per_iteration[f.iteration].append(f.accuracy[task]["value"])
            iterations = sorted(per_iteration)
            if not iterations:
                continue
            seeds = f"{len(group.runs)} seed{'s' if len(group.runs) > 1 else ''}"
            [line] = axis.plot(iterations, [statistics.fmean(per_iteration[k]) for k in iterations],
                               marker="o", label=f"{group.label} ({seeds})")
            for k in iterations:
                axis.scatter([k] * len(per_iteration[k]), per_iteration[k], color=line.get_color(), alpha=0.35, s=16)
        axis.set(title=f"{task}: accuracy, mean over seeds (dots: seeds)", xlabel="EM iteration", ylabel="accuracy")
        axis.set_xticks(sorted({f.iteration for run in runs for f in run.figures}))
        axis.legend(fontsize="small")
    return save_png(figure, out / "comparison.png")
