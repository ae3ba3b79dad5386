"""Matplotlib for files only (no display on servers), and atomic PNG writes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fem_cli.jsonl import atomic_write


def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(figure: Any, path: Path, dpi: int = 110) -> Path:
    """Write `figure` to `path` through a temporary file (as every output), then close it."""
    figure.tight_layout()
    try:
        with atomic_write(path, "wb") as handle:
            figure.savefig(handle, dpi=dpi, format="png")
    finally:
        pyplot().close(figure)
    return path
