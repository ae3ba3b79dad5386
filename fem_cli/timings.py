"""Where a command's time goes before its work: process start and imports, then model loading and
engine start. Every output record carries these figures (`process` in its provenance), and the
loop copies them per stage into `run.json`, so `fem report` can show what share of a run's wall
time was start-up rather than sampling, training or evaluating.

    with loading():          # model weights, an engine, and the imports they need
        model = load_model(...)
    process_timings()        # {"startup_seconds": ..., "load_seconds": ...}
"""

from __future__ import annotations

import contextlib
import time
from typing import Any, Iterator

import psutil

_command_started: float | None = None
_load_seconds = 0.0
_depth = 0


def mark_command_start() -> None:
    """Called by the entry point once the interpreter and the command-line layer are imported."""
    global _command_started
    _command_started = time.time()


@contextlib.contextmanager
def loading() -> Iterator[None]:
    """Count the block as loading time (nested blocks count once)."""
    global _load_seconds, _depth
    started = time.perf_counter()
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if _depth == 0:
            _load_seconds += time.perf_counter() - started


def process_timings() -> dict[str, Any]:
    """Seconds from process start to the command (None outside the `fem` entry point, e.g. in a
    notebook) and seconds spent loading so far."""
    startup = None
    if _command_started is not None:
        startup = round(_command_started - psutil.Process().create_time(), 3)
    return {"startup_seconds": startup, "load_seconds": round(_load_seconds, 3)}
