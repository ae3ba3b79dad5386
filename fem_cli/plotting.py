"""Figures for files only, and atomic PNG writes.

Figures are made with matplotlib's object-oriented `Figure`, never through pyplot: pyplot would
pick a GUI backend for the whole process (or need `matplotlib.use`, a process-wide switch), and
keeps every figure alive until it is closed. A bare `Figure` renders PNGs with Agg by itself.

    figure = new_figure((5, 4)); figure.subplots().plot([0, 1]); save_png(figure, Path("x.png"))
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fem_cli.jsonl import atomic_write


def new_figure(figsize: tuple[float, float]) -> Any:
    from matplotlib.figure import Figure  # lazy: matplotlib takes a while to import

    return Figure(figsize=figsize)


def save_png(figure: Any, path: Path, dpi: int = 110) -> Path:
    """Write `figure` to `path` as PNG (a temporary file renamed, as every output)."""
    figure.tight_layout()
    with atomic_write(path, "wb") as handle:
        figure.savefig(handle, dpi=dpi, format="png")
    return path
