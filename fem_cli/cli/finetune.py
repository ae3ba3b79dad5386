"""`fem finetune`: the M-step on the command line (a thin layer over `run_finetune`).

Only the flags given override the recipe (`--config`), which overrides the defaults. Runs unchanged
under `torchrun --nproc_per_node N -m fem_cli finetune ...` and `accelerate launch`.

    fem finetune --model smollm2 --train runs/it1/train.jsonl --out runs/it1/ckpt --epochs 2
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from rich.console import Console
from rich.table import Table

from fem_cli.cli.options import config_command
from fem_cli.timings import loading
from fem_cli.train.config import FinetuneConfig

EXAMPLES = """Examples:

  fem finetune --model smollm2 --train runs/it1/train.jsonl --out runs/it1/ckpt --epochs 2

  fem finetune --model qwen --train train.jsonl --out ckpt-lora --lora-r 16 --merge

  torchrun --nproc_per_node 2 -m fem_cli finetune --model smollm2 --train train.jsonl --out ckpt
"""


@config_command(FinetuneConfig, name="finetune", epilog=EXAMPLES)
def finetune_command(cfg: FinetuneConfig) -> None:
    """Fine-tune a model on filtered rationales (the M-step), with the loss on completions only."""
    with loading():  # counted as loading: the libraries the M-step needs
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
    table.add_row("precision", f"{training['precision']} ({training['precision_why']})")
    final = training["final_loss"]
    table.add_row("final loss", "-" if final is None else f"{final:.4f}")
    speed = training["tokens_per_s"]
    table.add_row("tokens/s", "-" if speed is None else f"{speed:,.0f}")
    table.add_row("saved", f"{record['model']['saved']} -> {folder}")
    Console().print(table)
