"""The architecture checks itself: the import contracts of pyproject.toml ([tool.importlinter]:
layers, no import circle) hold, and every command module's command is on the `fem` app."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import typer
from importlinter.cli import lint_imports

import fem_cli.cli
from fem_cli.cli.main import app
from fem_cli.cli.options import Command

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_are_kept():
    # The same check as `lint-imports` in the repository root; a broken contract prints its chain.
    assert lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True) == 0


def test_every_command_module_is_registered():
    callbacks = {info.callback for info in app.registered_commands}
    groups = {info.typer_instance for info in app.registered_groups}
    for module_info in pkgutil.iter_modules(fem_cli.cli.__path__):
        if module_info.name in ("main", "options"):
            continue
        module = importlib.import_module(f"fem_cli.cli.{module_info.name}")
        commands = [value for value in vars(module).values() if isinstance(value, Command)]
        sub_apps = [value for value in vars(module).values() if isinstance(value, typer.Typer)]
        assert commands or sub_apps, f"fem_cli/cli/{module_info.name}.py declares no command"
        for command in commands:
            in_group = any(command.callback in {i.callback for i in g.registered_commands} for g in sub_apps)
            assert command.callback in callbacks or in_group, f"`fem {command.name}` is not registered in cli/main.py"
        for sub_app in sub_apps:
            assert sub_app in groups, f"the sub-commands of fem_cli/cli/{module_info.name}.py are not on the app"
