"""`fem finetune`: the M-step on the command line (a thin layer over `run_finetune`).

Only the flags given override the recipe (`--config`), which overrides the defaults. Runs unchanged
under `torchrun --nproc_per_node N -m fem_cli finetune ...` and `accelerate launch`.

    fem finetune --model smollm2 --train runs/it1/train.jsonl --out runs/it1/ckpt --epochs 2
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from fem_cli.cli.main import app
from fem_cli.config import build_config, field_help
from fem_cli.train.config import FinetuneConfig


def _help(name: str) -> str:
    return field_help(FinetuneConfig, name)


EXAMPLE = (
    "Example: fem finetune --model smollm2 --train runs/it1/train.jsonl --out runs/it1/ckpt "
    "--epochs 2 --lora-r 16 --merge"
)


@app.command("finetune", epilog=EXAMPLE)
def finetune_command(
    model: Annotated[Optional[str], typer.Option(help=_help("model"))] = None,
    train: Annotated[Optional[Path], typer.Option(help=_help("train"))] = None,
    out: Annotated[Optional[Path], typer.Option(help=_help("out"))] = None,
    init: Annotated[Optional[str], typer.Option(help=_help("init"))] = None,
    overwrite: Annotated[Optional[bool], typer.Option("--overwrite", help=_help("overwrite"))] = None,
    max_length: Annotated[Optional[int], typer.Option(help=_help("max_length"))] = None,
    learning_rate: Annotated[Optional[float], typer.Option("--learning-rate", "--lr", help=_help("learning_rate"))] = None,
    epochs: Annotated[Optional[int], typer.Option(help=_help("epochs"))] = None,
    batch_size: Annotated[Optional[int], typer.Option(help=_help("batch_size"))] = None,
    grad_accum: Annotated[Optional[int], typer.Option(help=_help("grad_accum"))] = None,
    warmup_ratio: Annotated[Optional[float], typer.Option(help=_help("warmup_ratio"))] = None,
    weight_decay: Annotated[Optional[float], typer.Option(help=_help("weight_decay"))] = None,
    seed: Annotated[Optional[int], typer.Option(help=_help("seed"))] = None,
    precision: Annotated[Optional[str], typer.Option(help=_help("precision"))] = None,
    group_by_length: Annotated[Optional[bool], typer.Option(help=_help("group_by_length"))] = None,
    lora_r: Annotated[Optional[int], typer.Option(help=_help("lora_r"))] = None,
    lora_alpha: Annotated[Optional[int], typer.Option(help=_help("lora_alpha"))] = None,
    lora_dropout: Annotated[Optional[float], typer.Option(help=_help("lora_dropout"))] = None,
    lora_target_modules: Annotated[Optional[str], typer.Option(help=_help("lora_target_modules"))] = None,
    merge: Annotated[Optional[bool], typer.Option(help=_help("merge"))] = None,
    report_to: Annotated[Optional[str], typer.Option(help=_help("report_to"))] = None,
    config: Annotated[Optional[Path], typer.Option("--config", help="YAML recipe; flags given override it.")] = None,
) -> None:
    """Fine-tune a model on filtered rationales (the M-step), with the loss on completions only."""
    overrides = {
        "model": model, "train": train, "out": out, "init": init, "overwrite": overwrite,
        "max_length": max_length, "learning_rate": learning_rate, "epochs": epochs,
        "batch_size": batch_size, "grad_accum": grad_accum, "warmup_ratio": warmup_ratio,
        "weight_decay": weight_decay, "seed": seed, "precision": precision,
        "group_by_length": group_by_length, "lora_r": lora_r, "lora_alpha": lora_alpha,
        "lora_dropout": lora_dropout, "lora_target_modules": lora_target_modules, "merge": merge,
        "report_to": report_to,
    }
    cfg = build_config(FinetuneConfig, recipe=config, overrides=overrides)
    from fem_cli.train.finetune import MARKER, run_finetune  # lazy: pulls in torch and transformers

    folder = run_finetune(cfg)
    # torchrun and accelerate launch set RANK; one summary is enough.
    if os.environ.get("RANK", "0") == "0":
        _print_summary(folder, json.loads((folder / MARKER).read_text(encoding="utf-8")))


def _print_summary(folder: Path, record: dict) -> None:
    counts, training = record["counts"], record["training"]
    table = Table(title="fem finetune", show_header=False)
    table.add_row("examples kept", f"{counts['kept']} of {counts['examples_read']}")
    table.add_row("dropped (too long)", str(counts["dropped_too_long"]))
    table.add_row("steps", str(training["steps"]))
    final = training["final_loss"]
    table.add_row("final loss", "-" if final is None else f"{final:.4f}")
    speed = training["tokens_per_s"]
    table.add_row("tokens/s", "-" if speed is None else f"{speed:,.0f}")
    table.add_row("saved", f"{record['model']['saved']} -> {folder}")
    Console().print(table)
