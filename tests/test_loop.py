"""`fem loop` and `fem report` end to end on the tiny model: run folder, resume after a kill,
refusal of a changed config, the report's table and plots, and the shipped recipes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from fem_cli.cli.main import app
from fem_cli.config import build_config
from fem_cli.loop.config import LoopConfig, stage_config
from fem_cli.loop.run import plan

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def write_recipe(folder: Path, tiny_model: Path, questions: Path, **changes) -> Path:
    recipe = {
        "name": "t",
        "runs_dir": "runs",  # relative: two runs in two folders have identical contents
        "model": str(tiny_model),
        "task": str(questions),
        "iterations": 2,
        "sampler": "pps",
        "seed": 1,
        # The tiny model writes an answer line in about 1 draw in 8: enough draws that every
        # iteration keeps some whatever the seed.
        "sample": {"backend": "hf", "max_new_tokens": 48, "num_samples": 8},
        "filter": {"min_words": 0},
        "finetune": {"epochs": 1, "batch_size": 4, "learning_rate": 1e-3},
        "evaluate": {"backend": "hf", "max_new_tokens": 16},
        **changes,
    }
    path = folder / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def run_fem(folder: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fem_cli", *args], cwd=folder, capture_output=True, text=True)


def outputs(run_dir: Path) -> dict[str, bytes]:
    """Every data file of a run (not timings or provenance), by relative path."""
    files = {}
    for path in sorted(run_dir.rglob("*")):
        if path.suffix in (".jsonl", ".safetensors", ".yaml") and ".tmp" not in path.name:
            files[str(path.relative_to(run_dir))] = path.read_bytes()
    return files


@pytest.fixture(scope="module")
def finished_run(tiny_model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("loop-a")
    questions = folder / "questions.jsonl"
    from conftest import make_questions

    questions.write_text("".join(json.dumps(q) + "\n" for q in make_questions(12)))
    recipe = write_recipe(folder, tiny_model, questions)
    result = run_fem(folder, "loop", "--config", str(recipe))
    assert result.returncode == 0, result.stderr[-3000:]
    return folder, recipe, questions


def test_loop_writes_every_stage_and_its_record(finished_run):
    folder, _, _ = finished_run
    run_dir = folder / "runs" / "t"
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "done"
    assert list(record["stages"]) == ["0/evaluate"] + [f"{k}/{s}" for k in (1, 2) for s in ("sample", "filter", "finetune", "evaluate")]
    assert all(stage["status"] == "done" and stage["seconds"] > 0 for stage in record["stages"].values())
    assert record["config"]["sampler"] == "pps" and record["versions"]["torch"]
    for k in (1, 2):
        iteration = run_dir / f"iter-{k}"
        for name in ("samples.jsonl", "train.jsonl", "model/fem_train.json", "eval/results.json", "sample.yaml"):
            assert (iteration / name).exists(), iteration / name
    # Iteration 2 samples from iteration 1's model; with init=base every M-step starts from the base.
    sample2 = yaml.safe_load((run_dir / "iter-2" / "sample.yaml").read_text())
    finetune2 = yaml.safe_load((run_dir / "iter-2" / "finetune.yaml").read_text())
    assert sample2["model"] == "runs/t/iter-1/model" and sample2["seed"] == 3
    assert finetune2["model"] == record["config"]["model"] and finetune2["init"] == "base"
    assert (run_dir / "iter-0" / "eval" / "results.json").exists()


def test_resume_after_a_kill_gives_the_same_files(finished_run, tiny_model, tmp_path):
    reference, _, questions = finished_run
    recipe = write_recipe(tmp_path, tiny_model, questions)
    process = subprocess.Popen([sys.executable, "-m", "fem_cli", "loop", "--config", str(recipe)], cwd=tmp_path,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    run_file = tmp_path / "runs" / "t" / "run.json"
    deadline = time.time() + 300
    # Kill in the middle of iteration 1's fine-tuning: the sample and filter stages are finished.
    while time.time() < deadline:
        if run_file.exists() and json.loads(run_file.read_text())["stages"].get("1/finetune", {}).get("status") == "running":
            break
        time.sleep(0.2)
    else:
        pytest.fail("the loop never reached iteration 1's finetune stage")
    time.sleep(1.0)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    killed = json.loads(run_file.read_text())
    assert killed["stages"]["1/finetune"]["status"] == "running"
    assert not (tmp_path / "runs" / "t" / "iter-1" / "model" / "fem_train.json").exists()

    result = run_fem(tmp_path, "loop", "--config", str(recipe))
    assert result.returncode == 0, result.stderr[-3000:]
    resumed = json.loads(run_file.read_text())
    assert resumed["status"] == "done" and resumed["resumed"] == 1
    # Finished stages were not redone.
    assert resumed["stages"]["1/sample"]["started"] == killed["stages"]["1/sample"]["started"]
    assert outputs(tmp_path / "runs" / "t") == outputs(reference / "runs" / "t")


def test_a_changed_config_is_refused_unless_restarted(finished_run):
    folder, recipe, _ = finished_run
    result = run_fem(folder, "loop", "--config", str(recipe), "--sampler", "star")
    assert result.returncode == 2
    assert "was started with a different config (sampler changed)" in result.stderr
    assert "--restart" in result.stderr.strip().splitlines()[-1]
    # Unchanged: nothing to do, it just reports the finished run.
    again = run_fem(folder, "loop", "--config", str(recipe))
    assert again.returncode == 0, again.stderr[-2000:]
    assert "iteration 1/2" not in again.stderr


def test_report_writes_table_and_plots(finished_run, tmp_path):
    folder, _, _ = finished_run
    result = runner.invoke(app, ["report", str(folder / "runs" / "t"), "--out", str(tmp_path / "report")])
    assert result.exit_code == 0, result.output
    for name in ("accuracy.png", "calibration.png", "acceptance.png", "rationale_length.png", "predictions-t.png"):
        assert (tmp_path / "report" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = (tmp_path / "report" / "report.md").read_text()
    assert "| iteration | questions accuracy [95% CI] | questions constant baseline | questions ECE | acceptance |" in table
    assert len([line for line in table.splitlines() if line.startswith("| ") and line[2].isdigit()]) == 3


def test_report_refuses_a_folder_that_is_not_a_run(tmp_path):
    result = runner.invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 2 and "not a fem run folder" in result.output


RECIPES = sorted(p for p in (ROOT / "recipes").rglob("*.yaml") if not p.name.startswith("_"))  # _*: included bases


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: str(p.relative_to(ROOT / "recipes")))
def test_shipped_recipes_validate(recipe):
    cfg = build_config(LoopConfig, recipe=recipe)
    for iteration, stage in plan(cfg):
        stage_config(cfg, stage, iteration, cfg.run_dir)


def test_loop_section_may_not_override_what_the_loop_sets(tmp_path, tiny_model, questions_file):
    recipe = write_recipe(tmp_path, tiny_model, questions_file, sample={"seed": 5})
    result = runner.invoke(app, ["loop", "--config", str(recipe)])
    assert result.exit_code == 2 and "sample: seed is set by the loop itself" in result.output
    recipe = write_recipe(tmp_path, tiny_model, questions_file, finetune={"epoch": 2})
    result = runner.invoke(app, ["loop", "--config", str(recipe)])
    assert result.exit_code == 2 and "unknown option 'epoch' (did you mean 'epochs'?)" in result.output
