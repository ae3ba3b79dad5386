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

  fem filter samples.jsonl --require-consistent --balance-labels --max-per-question 2 --out train.jsonl
"""


@config_command(FilterConfig, name="filter", epilog=EXAMPLES)
def filter_samples(cfg: FilterConfig) -> None:
    """Recompute rewards, drop unverified samples (--require-verified), rationales whose working does not reach
    their answer (--require-consistent), leaks, duplicates and too-short rationales, cap the examples per gold
    label (--balance-labels), write training examples."""
    out, stats = run_filter(cfg)
    table = Table(title=f"fem filter -> {out}")
    for column in ("sampler/stage", "samples", "correct", "verified", "consistent", "unverified dropped", "inconsistent dropped",
                   "unread dropped", "kept", "leaks", "too short", "duplicates", "over cap", "unbalanced"):
        table.add_column(column, justify="left" if column == "sampler/stage" else "right")
    for name, counts in stats["per_stage"].items():
        verified = f"{counts.get('verified', 0)} ({counts['verified_share']:.0%})"
        consistent = f"{counts.get('consistent', 0)} ({counts['consistent_share']:.0%})"
        table.add_row(name, str(counts.get("total", 0)), str(counts.get("correct", 0)), verified, consistent,
                      *(str(counts.get(key, 0)) for key in ("unverified", "inconsistent", "unread", "kept", "leak",
                                                             "too_short", "duplicate", "over_cap", "unbalanced")))
    console = Console()
    console.print(table)
    console.print(f"questions with >= 1 kept: {stats['questions_with_kept']} / {stats['questions']}")
    kept = " ".join(f"{label} {count}" for label, count in stats["kept_per_label"].items())
    console.print(f"kept per gold label: {kept}")
    if stats["balance"]:
        caps = " ".join(f"{label} {cap}" for label, cap in stats["balance"]["caps"].items())
        dropped = " ".join(f"{label} {count}" for label, count in stats["balance"]["dropped"].items())
        console.print(f"--balance-labels: caps {caps}; dropped {dropped} ({stats['unbalanced_dropped']} in all)")
