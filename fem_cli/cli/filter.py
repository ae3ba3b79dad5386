"""`fem filter`: keep correct, hint-free rationales as the M-step training file (see fem_cli.filtering)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from fem_cli.cli.options import config_command
from fem_cli.filtering import FilterConfig, run_filter

EXAMPLES = """Examples:

  fem filter samples.jsonl --out train.jsonl

  fem filter samples-0.jsonl samples-1.jsonl --max-per-question 2 --out train.jsonl

  fem filter samples.jsonl --require-verified --out train.jsonl
"""


@config_command(FilterConfig, name="filter", epilog=EXAMPLES)
def filter_samples(cfg: FilterConfig) -> None:
    """Recompute rewards, drop unverified samples (--require-verified), leaks, duplicates and too-short rationales, write training examples."""
    out, stats = run_filter(cfg)
    table = Table(title=f"fem filter -> {out}")
    for column in ("sampler/stage", "samples", "correct", "verified", "unverified dropped", "kept", "leaks", "too short", "duplicates", "over cap"):
        table.add_column(column, justify="left" if column == "sampler/stage" else "right")
    for name, counts in stats["per_stage"].items():
        verified = f"{counts.get('verified', 0)} ({counts['verified_share']:.0%})"
        table.add_row(name, str(counts.get("total", 0)), str(counts.get("correct", 0)), verified,
                      *(str(counts.get(key, 0)) for key in ("unverified", "kept", "leak", "too_short", "duplicate", "over_cap")))
    console = Console()
    console.print(table)
    console.print(f"questions with >= 1 kept: {stats['questions_with_kept']} / {stats['questions']}")
