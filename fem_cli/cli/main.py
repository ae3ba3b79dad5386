"""`fem`: the command-line entry point. Each command lives in its own module and only builds a
config and calls the library; this module puts them all on one app (the command modules never
import it back). Bad input (FemError) is printed as one line with exit code 2.

    fem --help
"""

from __future__ import annotations

import click
import typer
from typer.core import TyperGroup

from fem_cli.cli import data, evaluate, filter, finetune, loop, models, report, sample, tasks
from fem_cli.errors import FemError


class FemGroup(TyperGroup):
    """Turns a FemError raised anywhere below into one line on stderr and exit code 2."""

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except FemError as err:
            click.secho(f"error: {err}", err=True, fg="red")
            ctx.exit(2)


app = typer.Typer(
    name="fem",
    cls=FemGroup,
    help="Teach a language model to reason by filtered expectation-maximization.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for command in (evaluate.evaluate, filter.filter_samples, finetune.finetune_command, loop.loop, report.report,
                sample.sample, tasks.tasks_command):
    command.register(app)
app.add_typer(data.data_app, name="data")
app.add_typer(models.models_app, name="models")


def main() -> None:
    app()
