"""`run_loop(cfg)`: K iterations of E-step (sample, filter) and M-step (finetune), each evaluated.

Each stage runs as its own process, `python -m fem_cli <stage> --config iter-k/<stage>.yaml`: the
same code path as the stand-alone command (a Makefile pipeline does exactly the same), and GPU
memory is given back for sure between stages (vLLM does not reliably free it in-process). The
stage's full config is written next to its output, so any stage can be rerun by hand.

    runs/<name>/run.json
    runs/<name>/iter-0/eval/                       the base model, evaluated
    runs/<name>/iter-k/{samples.jsonl, train.jsonl, model/, eval/, <stage>.yaml}

(the names are `fem_cli.runs`'s, where the report reads them too).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import yaml

from fem_cli.errors import INTERRUPTED_EXIT_CODE, QUIET_INTERRUPT_ENV, FemError
from fem_cli.jsonl import atomic_write
from fem_cli.loop.config import LoopConfig, stage_config
from fem_cli.loop.reuse import reuse_evaluation
from fem_cli.loop.state import RunState
from fem_cli.outputs import check_writable
from fem_cli.provenance import as_jsonable
from fem_cli.runs import STAGES, stage_config_path, stage_output, stage_record

# After Ctrl-C: how long a stage has to stop on the terminal's signal before it gets one from the
# loop, then how long to stop before it is killed.
STAGE_GRACE_SECONDS = 2
STAGE_STOP_SECONDS = 60


def plan(cfg: LoopConfig) -> list[tuple[int, str]]:
    return [(0, "evaluate")] + [(k, stage) for k in range(1, cfg.iterations + 1) for stage in STAGES]


def write_stage_config(cfg: LoopConfig, iteration: int, stage: str) -> Path:
    config = stage_config(cfg, stage, iteration, cfg.run_dir)
    path = stage_config_path(cfg.run_dir, iteration, stage)
    with atomic_write(path) as handle:
        yaml.safe_dump(as_jsonable(config), handle, sort_keys=False, allow_unicode=True)
    return path


def run_loop(
    cfg: LoopConfig,
    before_stage: Callable[[RunState, int, str], None] | None = None,
) -> Path:
    """Run (or resume) the loop; `before_stage(state, iteration, stage)` may show progress."""
    check_writable(cfg.run_dir, kind="folder")
    if cfg.restart and cfg.run_dir.exists():
        shutil.rmtree(cfg.run_dir)
    # Every stage config is built (and so validated) before any work starts.
    for iteration, stage in plan(cfg):
        stage_config(cfg, stage, iteration, cfg.run_dir)
    state = RunState.open(cfg)
    key, started = None, time.perf_counter()
    try:
        for iteration, stage in plan(cfg):
            key = f"{iteration}/{stage}"
            if state.is_done(key) and stage_output(cfg.run_dir, iteration, stage).exists():
                continue
            config_file = write_stage_config(cfg, iteration, stage)
            if iteration == 0 and cfg.base_eval:
                reuse_evaluation(Path(cfg.base_eval), stage_config(cfg, stage, 0, cfg.run_dir), stage_output(cfg.run_dir, 0, stage))
                state.reuse(key, cfg.base_eval)
                continue
            if before_stage:
                before_stage(state, iteration, stage)
            state.start(key)
            started = time.perf_counter()
            exit_code = run_stage(stage, config_file)
            seconds = time.perf_counter() - started
            if exit_code == INTERRUPTED_EXIT_CODE:
                raise KeyboardInterrupt  # the stage was interrupted (Ctrl-C reached it first)
            if exit_code != 0:
                state.fail(key, seconds, exit_code)
                raise FemError(
                    f"iteration {iteration}: `fem {stage} --config {config_file}` failed (exit {exit_code}, "
                    "its message is above); run the same command again to resume from this stage"
                )
            state.finish(key, seconds, _process_timings(stage_record(cfg.run_dir, iteration, stage)))
    except KeyboardInterrupt:
        # A second Ctrl-C must not cut the bookkeeping short.
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            state.interrupt(key, time.perf_counter() - started)
        finally:
            signal.signal(signal.SIGINT, previous)
        raise
    state.complete()
    return cfg.run_dir


def _process_timings(record: Path) -> dict:
    """The stage process's own start-up figures (fem_cli.timings), from the record it wrote last."""
    written = json.loads(record.read_text())
    return written.get("process") or written.get("provenance", {}).get("process", {})


def run_stage(stage: str, config_file: Path) -> int:
    """Run one stage as its own process; its exit code. On Ctrl-C the stage gets the interrupt
    too (from the terminal, or from here when only the loop was signalled) and is waited for, so
    it can drop its temporary files; one that does not stop within a minute is killed."""
    environment = {**os.environ, QUIET_INTERRUPT_ENV: "1"}
    # The stage starts with SIGINT ignored and fem's entry point turns it back on: a Ctrl-C that
    # lands while the interpreter is still importing would otherwise print a traceback there. One
    # that is lost that way is sent again by `_stop`.
    process = subprocess.Popen(
        [sys.executable, "-m", "fem_cli", stage, "--config", str(config_file)], env=environment,
        preexec_fn=_ignore_sigint if os.name == "posix" else None,
    )
    try:
        return process.wait()
    except KeyboardInterrupt:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            _stop(process)
        finally:
            signal.signal(signal.SIGINT, previous)
        raise


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _stop(process: subprocess.Popen) -> None:
    try:  # a Ctrl-C from the terminal reached the stage too: let it stop on its own
        process.wait(timeout=STAGE_GRACE_SECONDS)
        return
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGINT)  # only the loop was signalled, or the stage was starting
    try:
        process.wait(timeout=STAGE_STOP_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
