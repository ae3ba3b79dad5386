"""`fem models list` and `fem models prepare`: model aliases and the embedded offline SmolLM2."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from fem_cli.config import did_you_mean
from fem_cli.errors import FemError
from fem_cli.models import ALIASES, prepare_smollm2, prepared_folder

models_app = typer.Typer(help="Model aliases and the embedded offline model.", no_args_is_help=True)


@models_app.command("list", epilog="Example:\n\n  fem models list")
def list_models() -> None:
    """Show the model aliases --model accepts (a local folder or a hub id works too)."""
    table = Table(title="model aliases")
    for column in ("alias", "loads", "description", "prepared"):
        table.add_column(column)
    for alias in ALIASES.values():
        prepared = ""
        if alias.name == "smollm2":
            folder = prepared_folder("smollm2")
            prepared = str(folder) if (folder / "config.json").is_file() else "no: fem models prepare smollm2"
        table.add_row(alias.name, alias.hub_id, alias.description, prepared)
    Console().print(table)


@models_app.command("prepare", epilog="Example:\n\n  fem models prepare smollm2")
def prepare(
    name: str = typer.Argument(..., help="The embedded model to convert (smollm2)."),
    force: bool = typer.Option(False, "--force", help="Convert again even if the folder exists."),
) -> None:
    """Convert the embedded GGUF model once into a safetensors folder under $FEM_HOME/models."""
    if name != "smollm2":
        raise FemError(f"only the embedded model can be prepared: smollm2{did_you_mean(name, ['smollm2'])}")
    folder = prepare_smollm2(force=force)
    typer.echo(f"smollm2 ready: {folder}")
