"""`fem report`: compare runs per iteration (see fem_cli.report.run)."""

from __future__ import annotations

from rich.console import Console

from fem_cli.cli.options import config_command
from fem_cli.report.compare_tables import (
    comparison_caption, comparison_rows, gains_caption, group_rows, groups_caption, rich_table,
)
from fem_cli.report.run import ReportConfig, run_report
from fem_cli.report.timing import CAPTION as TIME_CAPTION
from fem_cli.report.timing import HEADER as TIME_HEADER
from fem_cli.report.tables import iterations_table

EXAMPLES = """Examples:

  fem report runs/demo

  fem report runs/qwen-arc_challenge-rs runs/qwen-arc_challenge-star runs/qwen-arc_challenge-pps --out runs/compare

  fem report runs/smollm2-arith-{rs,star,pps}-s{0,1} --out runs/smollm2-arith-report   (seeds grouped, paired tests)
"""


@config_command(ReportConfig, name="report", epilog=EXAMPLES)
def report(cfg: ReportConfig) -> None:
    """Tables and plots per EM iteration: accuracy with intervals, acceptance rate, rationale length;
    several runs: grouped by seed, each group against its base model and the groups in pairs
    (bootstrap intervals, McNemar, Holm), and with a reference run among them, each accuracy as a
    share of the distance from base to reference."""
    out, runs, comparison, timing = run_report(cfg)
    console = Console()
    for name, iterations in runs.items():
        console.print(iterations_table(name, iterations))
    if timing:
        console.print(rich_table("where the time went", TIME_HEADER, timing, TIME_CAPTION))
    if len(cfg.runs) > 1:
        console.print(rich_table("runs grouped by seed", *group_rows(comparison.groups), groups_caption(comparison.groups)))
    if comparison.gains:
        console.print(rich_table("gain over the base model", *comparison_rows(comparison.gains), gains_caption(comparison.gains)))
    if comparison.tests:
        console.print(rich_table("paired comparison", *comparison_rows(comparison.tests), comparison_caption(comparison.tests)))
    console.print(f"written: {out / 'report.md'} and PNG plots in {out}")
