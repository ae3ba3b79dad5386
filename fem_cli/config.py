"""Configs: one dataclass per command, filled as defaults < YAML recipe < CLI flags.

Each field is documented once, in its `metadata["help"]`; the CLI reuses that text for its option.
pydantic converts and checks the values (a recipe's YAML and the flags are read as JSON data, in
pydantic's strict mode: `shuffle: 1` is not a yes). Every error has one shape, `where: what`,
where `where` is the recipe's `file:line` of the key (or the flag, or the loop section) and an
unknown key gets a did-you-mean, so a typo never silently keeps a default.

    cfg = build_config(SampleConfig, recipe="recipes/demo.yaml", overrides={"seed": 3})
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import ConfigDict, TypeAdapter, ValidationError, with_config
from pydantic_core import to_jsonable_python

from fem_cli.errors import FemError

C = TypeVar("C")


def option(default: Any, help: str, argument: bool = False, short: str | None = None) -> Any:
    """A config field with its help text (the single place the option is documented).
    `argument`: the CLI takes it as positional arguments instead of a --flag; `short`: a short
    flag too (`-n`)."""
    metadata = {"help": help, "argument": argument, "short": short}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=metadata)
    if dataclasses.is_dataclass(default):
        return dataclasses.field(default_factory=lambda: dataclasses.replace(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


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


@dataclasses.dataclass
class Recipe:
    """A recipe's values, and for each top-level key where it was written (`file:line`)."""

    values: dict[str, Any]
    lines: dict[str, str]


def read_recipe(path: str | Path, _including: tuple[Path, ...] = ()) -> Recipe:
    """A recipe's mapping. `include: other.yaml` (relative to the recipe) is read first and
    overridden key by key, so a grid of recipes is a base plus small overrides."""
    path = Path(path)
    if not path.is_file():
        raise FemError(f"{path}: no such recipe file")
    if path.resolve() in _including:
        raise FemError(f"{path}: recipe includes itself")
    recipe = _read_yaml(path)
    include = recipe.values.pop(INCLUDE_KEY, None)
    if include is None:
        return recipe
    if not isinstance(include, str):
        raise FemError(f"{recipe.lines[INCLUDE_KEY]}: {INCLUDE_KEY} must be a file name")
    target = path.parent / include
    if not target.is_file():  # named where the include is written, not as a recipe of its own
        raise FemError(f"{recipe.lines[INCLUDE_KEY]}: {INCLUDE_KEY}: no such recipe file {target}")
    base = read_recipe(target, _including + (path.resolve(),))
    return Recipe(_merge(base.values, recipe.values), {**base.lines, **recipe.lines})


def _read_yaml(path: Path) -> Recipe:
    try:
        # utf-8-sig: a leading byte-order mark (Windows editors) is not part of the recipe.
        text = path.read_text(encoding="utf-8-sig")
        payload = yaml.safe_load(text)
        node = yaml.compose(text)
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
        return Recipe({}, {})
    if not isinstance(payload, dict):
        raise FemError(f"{path}: a recipe must be a mapping of option names to values")
    lines = {str(key.value): f"{path}:{key.start_mark.line + 1}" for key, _ in node.value}
    return Recipe(payload, lines)


@functools.cache
def _adapter(config_type: type) -> TypeAdapter:
    # Unknown keys are errors, in nested sections too (pydantic passes the setting down); set
    # here, once for every config, so a new config cannot forget it.
    return TypeAdapter(with_config(ConfigDict(extra="forbid"))(config_type))


def validate_config(
    config_type: type[C], values: dict[str, Any], where: str, key_where: dict[str, str] | None = None
) -> C:
    """`config_type` from plain values, converted and checked by pydantic. Every error is a
    FemError `where: what`, `where` being `key_where[key]` when the offending key is in it (a
    recipe line, a flag), else `where`."""
    key_where = key_where or {}
    try:
        # As JSON: strict conversion from the data types YAML and flags give (text to Path, whole
        # numbers to float), none of lax mode's guessing (1 -> true, "2" -> 2).
        return _adapter(config_type).validate_json(json.dumps(to_jsonable_python(values)), strict=True)
    except ValidationError as err:
        problem = err.errors(include_url=False)[0]
        location = [str(part) for part in problem["loc"]]
        at = key_where.get(location[0], where) if location else where
        what = _describe(config_type, problem, location)
        # The option the problem is about; an unknown key names itself in `what`.
        named = location[:-1] if problem["type"] == "unexpected_keyword_argument" else location
        raise FemError(f"{at}: {'.'.join(named) + ': ' if named else ''}{what}") from None
    except FemError as err:
        # A registry lookup in a config's __post_init__ (unknown sampler, task, backend).
        raise FemError(f"{where}: {err}") from None
    except UnicodeEncodeError as err:
        # YAML's "\ud800" escape gives a lone surrogate, which no UTF-8 text can hold.
        raise FemError(f"{where}: a value is not valid Unicode text ({err.reason})") from None


_EXPECTED = {
    "int_type": "expected a number", "int_parsing": "expected a number", "int_from_float": "expected an integer",
    "float_type": "expected a number", "float_parsing": "expected a number",
    "bool_type": "expected true or false", "bool_parsing": "expected true or false",
    "string_type": "expected text", "list_type": "expected a list",
    "dict_type": "expected a mapping", "dataclass_type": "expected a mapping", "dataclass_exact_type": "expected a mapping",
}


def _describe(config_type: type, problem: dict[str, Any], location: list[str]) -> str:
    kind = problem["type"]
    if kind == "value_error":  # a config's __post_init__ refused a value
        return str(problem["ctx"]["error"])
    if kind == "unexpected_keyword_argument":
        known = _field_names(config_type, location[:-1])
        return f"unknown option {location[-1]!r}{did_you_mean(location[-1], known)}"
    if kind == "literal_error":
        choices = typing.get_args(_annotation(config_type, location))
        return f"{problem['input']!r} is not one of {', '.join(map(str, choices))}"
    if kind.startswith("int_") and isinstance(problem["input"], float):
        return f"expected an integer, got {problem['input']!r}"
    if kind in _EXPECTED:
        return f"{_EXPECTED[kind]}, got {problem['input']!r}"
    return str(problem["msg"])


def _annotation(config_type: Any, path: list[str]) -> Any:
    """The declared type at `path` of `config_type` (nested dataclasses followed by name)."""
    for name in path:
        config_type = typing.get_type_hints(config_type).get(name)
    return config_type


def _field_names(config_type: Any, path: list[str]) -> list[str]:
    """The option names of the (nested) dataclass at `path` of `config_type`."""
    nested = _annotation(config_type, path)
    return [field.name for field in dataclasses.fields(nested)] if dataclasses.is_dataclass(nested) else []


def build_config(config_type: type[C], recipe: str | Path | None = None, overrides: dict[str, Any] | None = None) -> C:
    """defaults < recipe < overrides (overrides holding only the flags the user gave)."""
    loaded = read_recipe(recipe) if recipe else Recipe({}, {})
    values, key_where = dict(loaded.values), dict(loaded.lines)
    for key, value in (overrides or {}).items():
        if value is not None:
            values[key] = value
            key_where[key] = f"--{key.replace('_', '-')}"
    return validate_config(config_type, values, str(recipe) if recipe else "invalid option", key_where)
