"""Configs: one dataclass per command, filled as defaults < YAML recipe < CLI flags.

Each field is documented once, in its `metadata["help"]`; the CLI reuses that text for its option.
Unknown recipe keys are errors with a did-you-mean, so a typo never silently keeps a default.

    cfg = build_config(SampleConfig, recipe="recipes/demo.yaml", overrides={"seed": 3})
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from fem_cli.errors import FemError

C = TypeVar("C")


def option(default: Any, help: str, argument: bool = False) -> Any:
    """A config field with its help text (the single place the option is documented).
    `argument`: the CLI takes it as positional arguments instead of a --flag."""
    metadata = {"help": help, "argument": argument}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=metadata)
    if dataclasses.is_dataclass(default):
        return dataclasses.field(default_factory=lambda: dataclasses.replace(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def field_help(config_type: type, name: str) -> str:
    for field in dataclasses.fields(config_type):
        if field.name == name:
            return field.metadata.get("help", "")
    raise KeyError(name)


def did_you_mean(name: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(name, candidates, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


INCLUDE_KEY = "include"


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def read_recipe(path: str | Path, _including: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A recipe's mapping. `include: other.yaml` (relative to the recipe) is read first and
    overridden key by key, so a grid of recipes is a base plus small overrides."""
    path = Path(path)
    if not path.is_file():
        raise FemError(f"{path}: no such recipe file")
    if path.resolve() in _including:
        raise FemError(f"{path}: recipe includes itself")
    payload = _read_yaml(path)
    include = payload.pop(INCLUDE_KEY, None)
    if include is None:
        return payload
    if not isinstance(include, str):
        raise FemError(f"{path}: {INCLUDE_KEY} must be a file name")
    return _merge(read_recipe(path.parent / include, _including + (path.resolve(),)), payload)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        # utf-8-sig: a leading byte-order mark (Windows editors) is not part of the recipe.
        payload = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        reason = " ".join(str(getattr(err, "problem", None) or err).split())  # one line, whatever the error
        raise FemError(f"{where}: not valid YAML ({reason})") from None
    except UnicodeDecodeError as err:
        raise FemError(f"{path}: not UTF-8 text (byte {err.start})") from None
    except RecursionError:
        raise FemError(f"{path}: not valid YAML (nested too deeply)") from None
    if payload is None:
        return {}
    if not isinstance(payload, dict):
        raise FemError(f"{path}: a recipe must be a mapping of option names to values")
    return payload


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """Convert a YAML value to the field's declared type, or raise FemError naming it."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        non_none = [arg for arg in args if arg is not type(None)]
        return _coerce(value, non_none[0], where)
    if dataclasses.is_dataclass(annotation):
        if isinstance(value, annotation):
            return value
        if not isinstance(value, dict):
            raise FemError(f"{where}: expected a mapping")
        return from_mapping(annotation, value, where)
    if origin is dict:
        if not isinstance(value, dict):
            raise FemError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if origin in (list, tuple):
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if not isinstance(value, (list, tuple)):
            raise FemError(f"{where}: expected a list, got {value!r}")
        return [_coerce(item, args[0], where) for item in value] if args else list(value)
    if origin is typing.Literal:
        if value not in args:
            raise FemError(f"{where}: {value!r} is not one of {', '.join(map(str, args))}")
        return value
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise FemError(f"{where}: expected true or false, got {value!r}")
    if annotation in (int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise FemError(f"{where}: expected a number, got {value!r}")
        if annotation is int and float(value) != int(value):
            raise FemError(f"{where}: expected an integer, got {value!r}")
        return annotation(value)
    if annotation is str:
        if isinstance(value, (dict, list)):
            raise FemError(f"{where}: expected text, got {value!r}")
        return str(value)
    if annotation is Path:
        return Path(value)
    return value


def from_mapping(config_type: type[C], mapping: dict[str, Any], where: str) -> C:
    fields = {f.name: f for f in dataclasses.fields(config_type)}
    hints = typing.get_type_hints(config_type)
    values = {}
    for key, value in mapping.items():
        if key not in fields:
            raise FemError(f"{where}: unknown option {key!r}{did_you_mean(str(key), list(fields))}")
        values[key] = _coerce(value, hints[key], f"{where}: {key}")
    return config_type(**values)


def build_config(config_type: type[C], recipe: str | Path | None = None, overrides: dict[str, Any] | None = None) -> C:
    """defaults < recipe < overrides (overrides holding only the flags the user gave)."""
    mapping: dict[str, Any] = dict(read_recipe(recipe)) if recipe else {}
    where = str(recipe) if recipe else "invalid option"
    for key, value in (overrides or {}).items():
        if value is not None:
            mapping[key] = value
    try:
        return from_mapping(config_type, mapping, where)
    except (ValueError, TypeError) as err:
        # __post_init__ validation raises ValueError; report it as the user's mistake.
        raise FemError(f"{where}: {err}") from None
