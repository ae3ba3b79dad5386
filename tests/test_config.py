"""Configs: defaults < recipe < flags, recipe includes, unknown keys, and one CLI option per field."""

from __future__ import annotations

import dataclasses
import typing

import pytest
import typer
from typer.testing import CliRunner

from fem_cli.cli.main import app
from fem_cli.cli.options import cli_fields
from fem_cli.config import build_config
from fem_cli.errors import FemError
from fem_cli.evaluation.config import EvaluateConfig
from fem_cli.filtering import FilterConfig
from fem_cli.loop.config import LoopConfig
from fem_cli.report.run import ReportConfig
from fem_cli.sample import SampleConfig
from fem_cli.train.config import FinetuneConfig

COMMANDS = {
    "sample": SampleConfig,
    "filter": FilterConfig,
    "finetune": FinetuneConfig,
    "evaluate": EvaluateConfig,
    "loop": LoopConfig,
    "report": ReportConfig,
}


@pytest.mark.parametrize("name, config_type", COMMANDS.items())
def test_every_config_field_has_a_cli_option_of_the_same_name(name, config_type):
    command = typer.main.get_command(app).commands[name]
    params = {p.name for p in command.params}
    assert {f.name for f in cli_fields(config_type)} <= params
    assert "config" in params
    for field in dataclasses.fields(config_type):
        assert field.metadata.get("help"), f"{name}.{field.name} has no help text"


def test_recipe_sections_are_the_only_fields_without_a_flag():
    hidden = {f.name for f in dataclasses.fields(LoopConfig)} - {f.name for f in cli_fields(LoopConfig)}
    assert hidden == {"sample", "filter", "finetune", "evaluate", "prompt"}
    for name in hidden:
        annotation = typing.get_type_hints(LoopConfig)[name]
        assert dataclasses.is_dataclass(annotation) or typing.get_origin(annotation) is dict


def test_defaults_then_recipe_then_flags(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("task: arith\nnum_samples: 2\ntemperature: 0.5\nprompt:\n  worked_example: false\n")
    cfg = build_config(SampleConfig, recipe=recipe, overrides={"temperature": 0.9, "seed": None})
    assert (cfg.task, cfg.num_samples, cfg.temperature, cfg.seed) == ("arith", 2, 0.9, 0)
    assert cfg.prompt.worked_example is False and cfg.prompt.instruction is None  # others keep defaults (the style's)


def test_include_merges_sections_key_by_key(tmp_path):
    (tmp_path / "base.yaml").write_text("model: qwen\niterations: 5\nfinetune:\n  epochs: 3\n  lora_r: 8\n")
    (tmp_path / "run.yaml").write_text("include: base.yaml\niterations: 2\nfinetune:\n  lora_r: 16\n")
    cfg = build_config(LoopConfig, recipe=tmp_path / "run.yaml")
    assert (cfg.model, cfg.iterations, cfg.finetune) == ("qwen", 2, {"epochs": 3, "lora_r": 16})


@pytest.mark.parametrize(
    "text, message",
    [
        ("task: arith\nnum_sample: 2\n", "unknown option 'num_sample' (did you mean 'num_samples'?)"),
        ("task: arith\nnum_samples: two\n", "bad.yaml:2: num_samples: expected a number, got 'two'"),
        ("task: arith\nseed: 1.5\n", "bad.yaml:2: seed: expected an integer, got 1.5"),
        ("task: arith\nsampler: stra\n", "bad.yaml: unknown sampler 'stra' (did you mean 'star'?)"),
        ("task: arith\nbudget: 0\n", "bad.yaml: budget must be >= 1, got 0"),
        ("task: arith\nshuffle: 1\n", "shuffle: expected true or false"),
        ("task: [arith\n", "bad.yaml:2: not valid YAML"),
        ("- task\n", "a recipe must be a mapping"),
        ("task: arith\nprompt:\n  hnt: x\n", "unknown option 'hnt' (did you mean 'hint'?)"),
    ],
)
def test_bad_recipes_name_the_problem(tmp_path, text, message):
    recipe = tmp_path / "bad.yaml"
    recipe.write_text(text)
    with pytest.raises(FemError, match=None) as caught:
        build_config(SampleConfig, recipe=recipe)
    assert message in str(caught.value) and str(recipe) in str(caught.value)


def test_a_flag_error_names_the_flag(tmp_path):
    with pytest.raises(FemError, match="^--num-samples: num_samples: expected a number, got 'x'$"):
        build_config(SampleConfig, overrides={"task": "arith", "num_samples": "x"})


def test_a_recipe_that_includes_itself_is_refused(tmp_path):
    (tmp_path / "a.yaml").write_text("include: b.yaml\n")
    (tmp_path / "b.yaml").write_text("include: a.yaml\n")
    with pytest.raises(FemError, match="includes itself"):
        build_config(LoopConfig, recipe=tmp_path / "a.yaml")


def test_missing_recipe_file_is_one_line_on_the_cli(tmp_path):
    result = CliRunner().invoke(app, ["sample", "--config", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2
    assert result.output.strip() == f"error: {tmp_path / 'nope.yaml'}: no such recipe file"


@pytest.mark.parametrize("command", ["tasks", "data show", "models list", "models prepare", *COMMANDS])
def test_help_of_every_command_ends_with_an_example(command):
    result = CliRunner().invoke(app, [*command.split(), "--help"])
    assert result.exit_code == 0
    assert "fem " in result.output.strip().splitlines()[-1] or "Example" in result.output
