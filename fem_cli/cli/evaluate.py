"""`fem evaluate`: accuracy and calibration on multiple-choice and judge benchmarks (see fem_cli.evaluation)."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from fem_cli.cli.options import config_command
from fem_cli.evaluation import EvaluateConfig, run_evaluate
from fem_cli.evaluation.metrics import format_accuracy
from fem_cli.runs import results_path
from fem_cli.runtime import set_threads

EXAMPLES = """Examples:

  fem evaluate --model smollm2 --task arc_challenge,openbookqa --split validation --out eval/base

  fem evaluate --model runs/it2/ckpt --task arc_easy --num-samples 5 --out eval/it2-vote

  fem evaluate --model qwen --task mmlu --protocol loglik --batch-size 32 --out eval/qwen-mmlu

  fem evaluate --model smollm2 --task judge_pairs --data-dir ../shared/data --limit 50 --swap-augment --out eval/judge

  fem evaluate --model smollm2 --task arith --limit 40 --rotations 4 --out eval/arith-circular
"""


def _optional(value: float | None, pattern: str) -> str:
    return "-" if value is None else format(value, pattern)


def _signed(entry: dict[str, Any]) -> str:
    return f"{entry['value']:+.1%} [{entry['ci_low']:+.1%}, {entry['ci_high']:+.1%}]"


def _distribution(metrics: dict[str, Any]) -> str:
    """Answers per label, the gold count in brackets: `A 30 (10) B 2 (10) ... ? 1`."""
    predicted, gold = metrics["predictions"], metrics["gold"]
    cells = [f"{label} {predicted[label]} ({gold[label]})" for label in predicted if label != "unparsed"]
    return " ".join(cells + ([f"? {predicted['unparsed']}"] if predicted["unparsed"] else []))


def _consistency(entry: dict[str, Any] | None) -> str:
    if not entry:
        return "-"
    return f"{entry['value']:.1%} ({entry['consistent']}/{entry['all_parsed']})"


@config_command(EvaluateConfig, name="evaluate", epilog=EXAMPLES)
def evaluate(cfg: EvaluateConfig) -> None:
    """Evaluate a model (alias, folder, LoRA adapter, hub id) on tasks: generative answers or
    lm-eval's log-likelihood protocol, with accuracy and calibration (ECE, Brier, reliability
    diagram); writes results.json, per-question JSONL and PNGs to --out."""
    set_threads(cfg.threads)
    console = Console(stderr=True)
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    ) as bar:
        bars: dict[str, int] = {}

        def progress(task: str, done: int, total: int) -> None:
            if task not in bars:
                bars[task] = bar.add_task(f"{task} questions", total=total)
            bar.update(bars[task], completed=done)

        out = run_evaluate(cfg, on_status=lambda line: console.print(line), progress=progress)
    results = json.loads(results_path(out).read_text())
    table = Table(title=f"fem evaluate {results['model']} ({results['split']}) -> {out}")
    columns = ["task", "protocol", "n", "accuracy [95% CI]", "constant baseline", "accuracy - constant [95% CI]",
               "answers (gold)", "acc_norm", "ECE", "Brier", "parse failures", "mean tokens"]
    rotated = any("circular_accuracy" in summary["metrics"] for summary in results["tasks"].values())
    columns += ["rotations", "circular accuracy [95% CI]", "content consistency"] if rotated else []
    for column in (*columns, "seconds"):
        table.add_column(column, justify="left" if column in ("task", "protocol") else "right")
    subject_tables = []
    for task, summary in results["tasks"].items():
        metrics = summary["metrics"]
        calibration = metrics.get("calibration", {})
        circular = [str(summary.get("rotations", 1)), format_accuracy(metrics["circular_accuracy"]),
                    _consistency(metrics.get("content_consistency"))] if "circular_accuracy" in metrics else ["1", "-", "-"]
        table.add_row(
            task, results["protocol"], str(summary["questions"]), format_accuracy(metrics["accuracy"]),
            f"{metrics['constant_baseline']:.1%}", _signed(metrics["gain_over_constant"]), _distribution(metrics),
            format_accuracy(metrics["acc_norm"]) if "acc_norm" in metrics else "-",
            _optional(calibration.get("ece"), ".3f"), _optional(calibration.get("brier"), ".3f"),
            _optional(metrics.get("parse_failure_rate"), ".1%"), _optional(metrics.get("mean_rationale_tokens"), ".1f"),
            *(circular if rotated else []),
            f"{summary['wall_seconds']:.1f}",
        )
        if "subjects" in metrics:
            subject_tables.append(_subject_table(task, metrics))
    Console().print(table)
    for subject_table in subject_tables:
        Console().print(subject_table)


def _subject_table(task: str, metrics: dict[str, Any]) -> Table:
    table = Table(title=f"{task} per subject")
    table.add_column("subject")
    table.add_column("n", justify="right")
    table.add_column("accuracy", justify="right")
    for subject, entry in metrics["subjects"].items():
        table.add_row(subject, str(entry["n"]), f"{entry['accuracy']:.1%}")
    table.add_section()
    table.add_row("macro average", str(len(metrics["subjects"])), f"{metrics['macro_accuracy']:.1%}")
    table.add_row("micro average", str(metrics["accuracy"]["n"]), f"{metrics['micro_accuracy']:.1%}")
    return table
