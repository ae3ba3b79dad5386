"""PNG plots comparing runs per iteration: accuracy (with 95 % intervals), calibration error (ECE),
acceptance rate and mean rationale length. One line per run, so samplers compare side by side."""

from __future__ import annotations

from pathlib import Path

from fem_cli.plotting import new_figure, save_png
from fem_cli.report.collect import IterationFigures
from fem_cli.report.tables import calibration_error, eval_tasks


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
