"""The reliability diagram of one task: accuracy against confidence in the 15 calibration bins.

Bars show each bin's accuracy, a dot its mean confidence; the diagonal is perfect calibration
and the title carries the ECE. Written without a display (see fem_cli.plotting), to a temporary
file first and renamed.

    write_reliability_diagram(Path("eval/judge_pairs.reliability.png"), "judge_pairs", calibration)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fem_cli.plotting import new_figure, save_png


def write_reliability_diagram(path: Path, task: str, calibration: dict[str, Any]) -> Path:
    bins = calibration["bins"]
    edges = bins["edges"]
    width = edges[1] - edges[0]
    centers = [low + width / 2 for low in edges[:-1]]
    figure = new_figure((5, 6))
    top, bottom = figure.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    filled = [i for i, count in enumerate(bins["counts"]) if count]
    top.bar([centers[i] for i in filled], [bins["accuracy"][i] for i in filled], width=width * 0.95,
            color="tab:blue", edgecolor="black", label="accuracy")
    top.plot([bins["confidence"][i] for i in filled], [bins["accuracy"][i] for i in filled], "o",
             color="tab:orange", label="mean confidence")
    top.plot([0, 1], [0, 1], "--", color="gray", label="perfect calibration")
    top.set(xlim=(0, 1), ylim=(0, 1), ylabel="accuracy",
            title=f"{task}: ECE {calibration['ece']:.3f}, Brier {calibration['brier']:.3f}\n(confidence: {calibration['confidence']})")
    top.legend(fontsize="small", loc="upper left")
    bottom.bar(centers, bins["counts"], width=width * 0.95, color="gray")
    bottom.set(xlabel="confidence", ylabel="answers")
    return save_png(figure, path, dpi=100)
