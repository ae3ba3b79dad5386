"""`fem sample`: the E-step's proposal draws (see fem_cli.sample)."""

from __future__ import annotations

import json

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from fem_cli.cli.options import config_command
from fem_cli.runs import summary_path
from fem_cli.runtime import set_threads
from fem_cli.sample import SampleConfig, run_sample

EXAMPLES = """Examples:

  fem sample --model smollm2 --task arc_easy --split train --limit 32 --sampler pps --num-samples 4 --out samples.jsonl

  fem sample --model qwen --task arc_challenge --sampler star --backend vllm --shard 0/4 --out samples-0.jsonl

  fem sample --model smollm2 --task arith --limit 24 --sampler pps --permute-choices --verify --out samples.jsonl

  fem sample --task arith_hard --limit 64 --shuffle --sampler reference --permute-choices --out reference.jsonl
"""


def _number(value: float | None) -> str:
    """One decimal; a dash for a figure a written (reference) stage does not have."""
    return "–" if value is None else f"{value:.1f}"


@config_command(SampleConfig, name="sample", epilog=EXAMPLES)
def sample(cfg: SampleConfig) -> None:
    """Draw rationales for each question from a proposal (rs, star, pps) and score them; or write the task's worked solutions (reference)."""
    set_threads(cfg.threads)
    console = Console(stderr=True)
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), console=console,
    ) as bar:
        tasks: dict[str, int] = {}

        def progress(stage: str, done: int, total: int, tokens: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(f"{cfg.sampler}/{stage} questions", total=total, rate="")
            elapsed = bar.tasks[tasks[stage]].elapsed or 0.0
            rate = f"{tokens / elapsed:.0f} tok/s" if elapsed > 0 and tokens else ""  # none: written (reference)
            bar.update(tasks[stage], completed=done, rate=rate)

        out = run_sample(cfg, on_status=lambda line: console.print(line), progress=progress)
    summary = json.loads(summary_path(out).read_text())
    table = Table(title=f"fem sample -> {out}")
    verified = summary.get("verify", False)
    columns = ("sampler/stage", "questions", "solved", "samples", "accepted", "accept rate",
               *(("verified",) if verified else ()), "consistent", "mean tokens", "tok/s", "seconds")
    for column in columns:
        table.add_column(column, justify="right" if column != "sampler/stage" else "left")
    for name, stats in summary["stages"].items():
        table.add_row(
            name, str(stats["questions"]), str(stats["questions_with_correct"]), str(stats["samples"]),
            str(stats["accepted"]), f"{stats['acceptance_rate']:.1%}",
            *((f"{stats['verified']} ({stats['verified_share']:.0%} of accepted)",) if verified else ()),
            f"{stats['consistent']} ({stats['consistent_share']:.0%} of accepted)",
            _number(stats["mean_rationale_tokens"]), _number(stats["tokens_per_second"]), f"{stats['wall_seconds']:.1f}",
        )
    Console().print(table)
