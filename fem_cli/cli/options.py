"""Typer commands generated from config dataclasses.

Every field of a command's config becomes a `--field-name` option with the field's own help
(documented once, in the dataclass), plus `--config recipe.yaml`. Options default to "not given",
so precedence is exactly defaults < recipe < flags. Nested sections (e.g. `prompt`, a loop's `finetune:`) are
set from recipes only.

    @config_command(SampleConfig, name="sample", epilog="fem sample --model smollm2 ...")
    def sample(cfg: SampleConfig) -> None: ...

    sample.register(app)  # in fem_cli.cli.main, which lists every command
"""

from __future__ import annotations

import dataclasses
import inspect
import types
import typing
from pathlib import Path
from typing import Any, Callable, Optional

import typer

from fem_cli.config import build_config


def _option_type(annotation: Any) -> Any:
    """The Typer-facing type of a config field: Optional of a plain click-friendly type."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        annotation = next(arg for arg in args if arg is not type(None))
        origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return str  # the config validates the choice and names the valid ones
    if origin in (list, tuple):
        return list[_option_type(args[0])] if args else list[str]
    return annotation


def cli_fields(config_type: type) -> list[dataclasses.Field]:
    """Fields that get a flag: not nested sections (a dataclass or a mapping), which recipes set."""
    hints = typing.get_type_hints(config_type)
    return [
        f for f in dataclasses.fields(config_type)
        if not dataclasses.is_dataclass(hints[f.name]) and typing.get_origin(hints[f.name]) is not dict
    ]


@dataclasses.dataclass(frozen=True)
class Command:
    """One `fem` command, not yet on an app: each cli module declares its own and
    `fem_cli.cli.main` registers them all, so no command module imports the app."""

    name: str
    callback: Callable[..., Any]
    epilog: str

    def register(self, app: typer.Typer) -> None:
        app.command(name=self.name, epilog=self.epilog)(self.callback)


def command(name: str, epilog: str) -> Callable[[Callable[..., Any]], Command]:
    """A plain Typer command function (its parameters are its options) as a `Command`."""
    return lambda callback: Command(name, callback, epilog)


def config_command(config_type: type, name: str, epilog: str, help: str | None = None) -> Callable[[Callable[[Any], Any]], Command]:
    """A command whose options are `config_type`'s fields; `run(cfg)` is called with the config."""
    hints = typing.get_type_hints(config_type)

    def decorate(run: Callable[[Any], Any]) -> Command:
        parameters = []
        annotations: dict[str, Any] = {}
        for field in cli_fields(config_type):
            option_type = Optional[_option_type(hints[field.name])]
            default_value = field.default if field.default is not dataclasses.MISSING else field.default_factory()  # type: ignore[misc]
            help_text = field.metadata.get("help", "")
            if field.metadata.get("argument"):
                info = typer.Argument(None, help=help_text, show_default=False)
            else:
                flag = f"--{field.name.replace('_', '-')}"
                if hints[field.name] is bool:
                    flag = f"{flag}/--no-{flag[2:]}"
                shown = str(default_value) if default_value not in (None, "", []) else False
                flags = [flag, field.metadata["short"]] if field.metadata.get("short") else [flag]
                info = typer.Option(None, *flags, help=help_text, show_default=shown)
            parameters.append(inspect.Parameter(field.name, inspect.Parameter.KEYWORD_ONLY, default=info, annotation=option_type))
            annotations[field.name] = option_type
        config_info = typer.Option(None, "--config", help="YAML recipe with any of these options; flags override it.", show_default=False)
        parameters.append(inspect.Parameter("config", inspect.Parameter.KEYWORD_ONLY, default=config_info, annotation=Optional[Path]))
        annotations["config"] = Optional[Path]

        def callback(**kwargs: Any) -> Any:
            recipe = kwargs.pop("config")
            overrides = {key: value for key, value in kwargs.items() if value not in (None, [], ())}
            return run(build_config(config_type, recipe=recipe, overrides=overrides))

        callback.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
        callback.__annotations__ = annotations
        callback.__doc__ = help or run.__doc__
        callback.__name__ = name
        return Command(name, callback, epilog)

    return decorate
