"""Where each stage writes, and the layout of an EM run folder: the one place these names live.

The stages write through these functions and the loop and `fem report` read through the same
ones, so renaming a file here renames it for every writer and reader at once.

    <out>.summary.json          `fem sample`'s statistics beside its samples (summary_path)
    <out>.stats.json            `fem filter`'s statistics beside its training file (stats_path)
    <out>/results.json          `fem evaluate`'s metrics, written last (results_path)
    <out>/fem_train.json        `fem finetune`'s record, written last (TRAIN_RECORD)

    runs/<name>/run.json                  the run record and resume point (run_file)
    runs/<name>/iter-0/eval/              the base model, evaluated
    runs/<name>/iter-k/<stage>.yaml       each stage's full config (stage_config_path)
    runs/<name>/iter-k/samples.jsonl      sample     \\
    runs/<name>/iter-k/train.jsonl        filter      | stage_output(run_dir, k, stage)
    runs/<name>/iter-k/model/             finetune    |
    runs/<name>/iter-k/eval/              evaluate   /

    results_path(stage_output(Path("runs/demo"), 1, "evaluate"))  # -> runs/demo/iter-1/eval/results.json
"""

from __future__ import annotations

from pathlib import Path

# The stages of one EM iteration, in order.
STAGES = ("sample", "filter", "finetune", "evaluate")
RUN_FILE = "run.json"
RESULTS_FILE = "results.json"
SUMMARY_SUFFIX = ".summary.json"
STATS_SUFFIX = ".stats.json"
STAGE_OUTPUTS = {"sample": "samples.jsonl", "filter": "train.jsonl", "finetune": "model", "evaluate": "eval"}
TRAIN_RECORD = "fem_train.json"


def summary_path(samples: str | Path) -> Path:
    return Path(f"{samples}{SUMMARY_SUFFIX}")


def stats_path(train: str | Path) -> Path:
    return Path(f"{train}{STATS_SUFFIX}")


def results_path(eval_dir: str | Path) -> Path:
    return Path(eval_dir) / RESULTS_FILE


def run_file(run_dir: Path) -> Path:
    return run_dir / RUN_FILE


def iteration_dir(run_dir: Path, iteration: int) -> Path:
    return run_dir / f"iter-{iteration}"


def stage_output(run_dir: Path, iteration: int, stage: str) -> Path:
    return iteration_dir(run_dir, iteration) / STAGE_OUTPUTS[stage]


def stage_record(run_dir: Path, iteration: int, stage: str) -> Path:
    """The JSON record a stage writes last, beside or inside its output."""
    out = stage_output(run_dir, iteration, stage)
    return {"sample": summary_path(out), "filter": stats_path(out), "finetune": out / TRAIN_RECORD, "evaluate": results_path(out)}[stage]


def stage_config_path(run_dir: Path, iteration: int, stage: str) -> Path:
    return iteration_dir(run_dir, iteration) / f"{stage}.yaml"
