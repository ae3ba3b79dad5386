"""PNG plots comparing runs per iteration: accuracy (with 95 % intervals), calibration error (ECE),
acceptance rate and mean rationale length, one line per run, so samplers compare side by side; and
per run, the answers' label distribution per iteration beside the golds' (a label prior shows)."""

from __future__ import annotations

import re
from pathlib import Path

from fem_cli.plotting import new_figure, save_png
from fem_cli.report.collect import IterationFigures
from fem_cli.report.tables import calibration_error, eval_tasks

UNPARSED = "unparsed"


def plot_runs(runs: dict[str, list[IterationFigures]], out: Path) -> list[Path]:
    written = []
    tasks = eval_tasks([f for iterations in runs.values() for f in iterations])
    if tasks:
        figure = new_figure((5 * len(tasks), 4))
        axes = figure.subplots(1, len(tasks), squeeze=False)
        for axis, task in zip(axes[0], tasks):
            for name, iterations in runs.items():
                points = [(f.iteration, f.accuracy[task]) for f in iterations if task in f.accuracy]
                if not points:
                    continue
                xs = [k for k, _ in points]
                ys = [a["value"] for _, a in points]
                errors = [[a["value"] - a["ci_low"] for _, a in points], [a["ci_high"] - a["value"] for _, a in points]]
                axis.errorbar(xs, ys, yerr=errors, marker="o", capsize=3, label=name)
            axis.set(title=f"{task}: accuracy (95 % CI)", xlabel="EM iteration", ylabel="accuracy")
            axis.set_xticks(sorted({f.iteration for its in runs.values() for f in its}))
            axis.legend(fontsize="small")
        written.append(save_png(figure, out / "accuracy.png"))
    calibrated = [t for t in tasks if any(calibration_error(f, t) is not None for its in runs.values() for f in its)]
    if calibrated:
        figure = new_figure((5 * len(calibrated), 4))
        axes = figure.subplots(1, len(calibrated), squeeze=False)
        for axis, task in zip(axes[0], calibrated):
            for name, iterations in runs.items():
                points = [(f.iteration, calibration_error(f, task)) for f in iterations]
                points = [(k, v) for k, v in points if v is not None]
                if points:
                    axis.plot([k for k, _ in points], [v for _, v in points], marker="o", label=name)
            axis.set(title=f"{task}: expected calibration error", xlabel="EM iteration", ylabel="ECE (15 bins)")
            axis.set_xticks(sorted({f.iteration for its in runs.values() for f in its}))
            axis.set_ylim(bottom=0)
            axis.legend(fontsize="small")
        written.append(save_png(figure, out / "calibration.png"))
    for attribute, title, file_name in (
        ("acceptance_rate", "E-step acceptance rate", "acceptance.png"),
        ("mean_rationale_tokens", "mean rationale length (tokens)", "rationale_length.png"),
    ):
        figure = new_figure((5, 4))
        axis = figure.subplots()
        for name, iterations in runs.items():
            points = [(f.iteration, getattr(f, attribute)) for f in iterations if getattr(f, attribute) is not None]
            if points:
                axis.plot([k for k, _ in points], [v for _, v in points], marker="o", label=name)
        axis.set(title=title, xlabel="EM iteration")
        axis.legend(fontsize="small")
        written.append(save_png(figure, out / file_name))
    return written


def plot_prediction_distribution(name: str, iterations: list[IterationFigures], out: Path) -> Path | None:
    """One PNG for run `name`: per task, per iteration, a stacked bar of the answers per label
    (and unparsed) beside a stacked bar of the golds; None when no evaluation reported them."""
    tasks = [t for t in eval_tasks(iterations) if any("predictions" in f.metrics.get(t, {}) for f in iterations)]
    if not tasks:
        return None
    from matplotlib import colormaps  # lazy, as every matplotlib import here

    figure = new_figure((max(5, 1.6 * len(iterations)) * len(tasks), 4))
    axes = figure.subplots(1, len(tasks), squeeze=False)
    for axis, task in zip(axes[0], tasks):
        evaluated = [f for f in iterations if "predictions" in f.metrics.get(task, {})]
        labels = list(dict.fromkeys(k for f in evaluated for k in f.metrics[task]["predictions"] if k != UNPARSED))
        colours = {label: colormaps["tab10"](i % 10) for i, label in enumerate(labels)} | {UNPARSED: "lightgrey"}
        ticks, names = [], []
        for position, figures in enumerate(evaluated):
            for offset, key, caption in ((-0.2, "predictions", "answers"), (0.2, "gold", "gold")):
                counts = figures.metrics[task][key]
                total = sum(counts.values()) or 1
                bottom = 0.0
                for label in [*labels, UNPARSED]:
                    share = counts.get(label, 0) / total
                    axis.bar(position + offset, share, width=0.38, bottom=bottom, color=colours[label],
                             label=label if position == 0 and key == "predictions" else None)
                    bottom += share
                ticks.append(position + offset)
                names.append(f"{caption}\nit {figures.iteration}")
        axis.set_xticks(ticks, names, fontsize="small")
        axis.set(title=f"{name}: {task} answers vs gold", ylabel="share of evaluated prompts", ylim=(0, 1))
        axis.legend(fontsize="small", loc="upper right")
    return save_png(figure, out / f"predictions-{re.sub(r'[^A-Za-z0-9._-]+', '-', name)}.png")
