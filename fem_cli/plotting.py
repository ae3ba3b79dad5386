"""Matplotlib for files only (no display on servers), and atomic PNG writes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(figure: Any, path: Path, dpi: int = 110) -> Path:
    """Write `figure` to `path` through a temporary file, then close it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.png")
    figure.tight_layout()
    figure.savefig(tmp, dpi=dpi)
    pyplot().close(figure)
    tmp.replace(path)
    return path
