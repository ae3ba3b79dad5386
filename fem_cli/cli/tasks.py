"""`fem tasks`: the registered benchmarks, their splits with row counts, licences and hub ids.

    fem tasks
"""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from fem_cli.cli.options import command
from fem_cli.tasks import TaskSpec, list_tasks


def _splits(spec: TaskSpec) -> str:
    return "\n".join(f"{split} {spec.counts[split]}" if split in spec.counts else split for split in spec.splits)


@command("tasks", epilog="Example: fem tasks")
def tasks_command() -> None:
    """List the benchmarks fem knows: splits with row counts, licence, hub dataset."""
    table = Table(title="fem tasks")
    table.add_column("task", no_wrap=True)
    table.add_column("splits (rows)", no_wrap=True)
    table.add_column("licence")
    table.add_column("source (Hugging Face hub)")
    for spec in list_tasks():
        table.add_row(spec.name, _splits(spec), spec.licence, spec.where)
        if spec.subsets:
            # Subset tasks are not listed one by one (MMLU has 57); one row shows the pattern.
            table.add_row(
                f"{spec.name}:<subject>",
                "\n".join(spec.splits),
                spec.licence,
                f"{spec.hub_id} (<subject>): {len(spec.subsets)} subjects, e.g. {spec.subsets[0]}",
            )
    Console().print(table)
