"""`fem report`: compare runs per iteration (see fem_cli.report.run)."""

from __future__ import annotations

from rich.console import Console

from fem_cli.cli.options import config_command
from fem_cli.report.run import ReportConfig, run_report
from fem_cli.report.tables import iterations_table

EXAMPLES = """Examples:

  fem report runs/demo

  fem report runs/qwen-arc_challenge-rs runs/qwen-arc_challenge-star runs/qwen-arc_challenge-pps --out runs/compare
"""


@config_command(ReportConfig, name="report", epilog=EXAMPLES)
def report(cfg: ReportConfig) -> None:
    """Tables and plots per EM iteration: accuracy with intervals, acceptance rate, rationale length."""
    out, runs = run_report(cfg)
    console = Console()
    for name, iterations in runs.items():
        console.print(iterations_table(name, iterations))
    console.print(f"written: {out / 'report.md'} and PNG plots in {out}")
