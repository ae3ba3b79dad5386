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
import os
import sys
import time
from pathlib import Path
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


def _process_started() -> float:
    """The process's start as a `time.time()` value. On Linux psutil adds the start (in clock
    ticks since boot) to the boot time in whole seconds (/proc/stat's btime), which puts it up to
    a second early; the kernel's boot clock gives it to a clock tick."""
    if sys.platform.startswith("linux"):
        # /proc/self/stat: the 22nd field is the start in clock ticks since boot; the process name
        # (field 2, in parentheses) may hold spaces, so fields are counted after its ")".
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        since_start = time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / os.sysconf("SC_CLK_TCK")
        return time.time() - since_start
    return psutil.Process().create_time()


def process_timings() -> dict[str, Any]:
    """Seconds from process start to the command (None outside the `fem` entry point, e.g. in a
    notebook) and seconds spent loading so far."""
    startup = None
    if _command_started is not None:
        startup = round(_command_started - _process_started(), 3)
    return {"startup_seconds": startup, "load_seconds": round(_load_seconds, 3)}
