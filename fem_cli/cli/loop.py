"""`fem loop`: EM iterations in a resumable run folder (see fem_cli.loop.run)."""

from __future__ import annotations

from rich.console import Console
from rich.rule import Rule

from fem_cli.cli.options import config_command
from fem_cli.loop.config import LoopConfig
from fem_cli.loop.run import plan, run_loop
from fem_cli.loop.state import RunState
from fem_cli.report.collect import collect_run
from fem_cli.report.tables import iterations_table

EXAMPLES = """Examples:

  fem loop --config recipes/demo.yaml

  fem loop --sampler pps --model qwen --task arc_challenge --data-dir ../shared/data --iterations 3

  fem loop --config recipes/paper/qwen-arc_challenge-star.yaml --iterations 5   (resumes, adds iterations)
"""


@config_command(LoopConfig, name="loop", epilog=EXAMPLES)
def loop(cfg: LoopConfig) -> None:
    """Run EM iterations: sample -> filter -> finetune -> evaluate; rerun the same command to resume."""
    console = Console(stderr=True)
    steps = plan(cfg)

    def before_stage(state: RunState, iteration: int, stage: str) -> None:
        done = sum(state.is_done(f"{k}/{s}") for k, s in steps)
        console.print(iterations_table(cfg.name, collect_run(cfg.run_dir)))
        console.print(Rule(f"[bold]{cfg.name}[/]: iteration {iteration}/{cfg.iterations}, {stage} (stage {done + 1} of {len(steps)})"))

    run_dir = run_loop(cfg, before_stage=before_stage)
    Console().print(iterations_table(cfg.name, collect_run(run_dir)))
    Console().print(f"run folder: {run_dir}  (fem report {run_dir})")
