"""`fem`: the command-line entry point. Each command lives in its own module and only builds a
config and calls the library; this module puts them all on one app (the command modules never
import it back). Bad input (FemError) is printed as one line with exit code 2, and Ctrl-C (SIGINT)
as one line with exit code 130 (128 + SIGINT, as shells report it).

    fem --help
"""

from __future__ import annotations

import os
import signal

import click
import typer
from typer.core import TyperGroup

from fem_cli.cli import data, evaluate, filter, finetune, loop, models, report, sample, tasks
from fem_cli.errors import INTERRUPTED_EXIT_CODE, INTERRUPTED_MESSAGE, QUIET_INTERRUPT_ENV, FemError
from fem_cli.timings import mark_command_start


class FemGroup(TyperGroup):
    """Turns a FemError raised anywhere below into one line on stderr and exit code 2, and an
    interruption into one line and exit code 130. Outputs are written to temporary names and
    renamed, so an interrupted command leaves nothing half-written."""

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except FemError as err:
            click.secho(f"error: {err}", err=True, fg="red")
            ctx.exit(2)
        except KeyboardInterrupt:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut this line short
            if not os.environ.get(QUIET_INTERRUPT_ENV):
                click.secho(INTERRUPTED_MESSAGE, err=True, fg="yellow")
            ctx.exit(INTERRUPTED_EXIT_CODE)


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
    mark_command_start()
    if os.environ.get(QUIET_INTERRUPT_ENV):
        # A loop stage starts with SIGINT ignored (see fem_cli.loop.run.run_stage): from here on,
        # Ctrl-C is handled, and reported by the loop.
        signal.signal(signal.SIGINT, signal.default_int_handler)
    app()
