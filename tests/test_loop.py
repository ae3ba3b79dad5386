"""`fem loop` and `fem report` end to end on the tiny model: run folder, resume after a kill,
refusal of a changed config, the report's table and plots, and the shipped recipes."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from fem_cli import runs
from fem_cli.cli.main import app
from fem_cli.config import build_config
from fem_cli.errors import FemError
from fem_cli.evaluation import run_evaluate
from fem_cli.filtering import run_filter
from fem_cli.loop.config import LoopConfig, stage_config
from fem_cli.loop.run import plan, run_loop
from fem_cli.loop.state import RunState
from fem_cli.report.collect import collect_run
from fem_cli.sample import run_sample

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
        # Sampling saves every 4 questions: a kill during sampling or evaluation finds finished batches to reuse.
        # The evaluation saves every question (12 batches) of up to 96 tokens: after the first is
        # seen, the stop must land before the stage ends (3 batches of 16 tokens, and in one CI run
        # 6 batches of 48, about 1 s in all, ended first).
        "sample": {"backend": "hf", "max_new_tokens": 48, "num_samples": 8, "checkpoint_every": 4},
        "filter": {"min_words": 0},
        "finetune": {"epochs": 1, "batch_size": 4, "learning_rate": 1e-3},
        "evaluate": {"backend": "hf", "max_new_tokens": 96, "checkpoint_every": 1},
        **changes,
    }
    path = folder / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def run_fem(folder: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fem_cli", *args], cwd=folder, capture_output=True, text=True)


@pytest.fixture(scope="module")
def finished_run(tiny_model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("loop-a")
    questions = folder / "questions.jsonl"
    from conftest import make_questions

    questions.write_text("".join(json.dumps(q) + "\n" for q in make_questions(12)))
    recipe = write_recipe(folder, tiny_model, questions)
    # Relative, as in the kill test: run.json records the command line.
    result = run_fem(folder, "loop", "--config", recipe.name)
    assert result.returncode == 0, result.stderr[-3000:]
    return folder, recipe, questions


def test_loop_writes_every_stage_and_its_record(finished_run):
    folder, _, _ = finished_run
    run_dir = folder / "runs" / "t"
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "done"
    assert list(record["stages"]) == ["0/evaluate"] + [f"{k}/{s}" for k in (1, 2) for s in ("sample", "filter", "finetune", "evaluate")]
    assert all(stage["status"] == "done" and stage["seconds"] > 0 for stage in record["stages"].values())
    # Each stage's process measured its own start-up and loading, within its wall time; the
    # stages that load a model (all but filter) spent time loading.
    for key, stage in record["stages"].items():
        assert 0 < stage["startup_seconds"] and stage["startup_seconds"] + stage["load_seconds"] < stage["seconds"], key
        assert (stage["load_seconds"] > 0) == (not key.endswith("filter")), key
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


# Record fields that measure time (or count resumptions): the only ones a resumed run may differ in.
TIMING_FIELDS = {
    "date", "created", "updated", "started", "finished", "seconds", "wall_seconds", "tokens_per_second",
    "runtime_s", "tokens_per_s", "train_runtime", "train_samples_per_second", "train_steps_per_second", "resumed",
    "startup_seconds", "load_seconds",
}


def without_timing(value):
    if isinstance(value, dict):
        return {key: without_timing(item) for key, item in value.items() if key not in TIMING_FIELDS}
    if isinstance(value, list):
        return [without_timing(item) for item in value]
    return value


def every_file(run_dir: Path) -> dict[str, object]:
    """Every file of a run folder, hidden ones (temporary files, checkpoints) included: JSON
    records without their timing fields, everything else as bytes."""
    files: dict[str, object] = {}
    for path in sorted(run_dir.rglob("*")):
        if path.is_file():
            name = str(path.relative_to(run_dir))
            files[name] = without_timing(json.loads(path.read_text())) if path.suffix == ".json" else path.read_bytes()
    return files


def stage_status(run_file: Path, key: str) -> str | None:
    try:
        return json.loads(run_file.read_text())["stages"].get(key, {}).get("status")
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def batch_saved(run_dir: Path, output: str) -> bool:
    return any(run_dir.glob(f"iter-*/.{output}.partial/*.jsonl"))


# Moments to stop the loop at, in the order a run reaches them: (what, reached(run folder)).
MOMENTS = [
    ("during sampling, a batch saved", lambda run: batch_saved(run, "samples.jsonl")),
    ("during fine-tuning", lambda run: stage_status(run / "run.json", "1/finetune") == "running"),
    ("between stages", lambda run: stage_status(run / "run.json", "1/finetune") == "done"),
    ("during evaluation, a batch saved", lambda run: stage_status(run / "run.json", "2/evaluate") == "running" and batch_saved(run, "eval")),
]


@pytest.mark.parametrize("signal_number", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_stopped_at_any_moment_the_rerun_gives_the_same_files(finished_run, tiny_model, tmp_path, signal_number):
    reference, _, questions = finished_run
    recipe = write_recipe(tmp_path, tiny_model, questions)
    run_dir = tmp_path / "runs" / "t"
    for moment, reached in MOMENTS:
        # Its own process group, as a terminal's foreground job, with SIGINT handled by default
        # (a shell's background job ignores SIGINT, and children would inherit that).
        process = subprocess.Popen(
            [sys.executable, "-m", "fem_cli", "loop", "--config", recipe.name], cwd=tmp_path,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        deadline = time.time() + 300
        while not reached(run_dir):
            assert process.poll() is None and time.time() < deadline, f"the loop never got {moment}"
            time.sleep(0.01)
        if moment == "during fine-tuning":
            time.sleep(2.0)  # into the stage's work, past its start-up
        os.killpg(process.pid, signal_number)
        _, stderr = process.communicate(timeout=120)
        if signal_number == signal.SIGINT:
            assert process.returncode == 130, stderr[-3000:]
            assert "Traceback" not in stderr
            assert stderr.strip().splitlines()[-1] == "interrupted: rerun the same command to resume"
            record = json.loads((run_dir / "run.json").read_text())
            assert record["status"] == "interrupted" and record["interrupted_stage"], moment
        else:
            assert process.returncode == -signal.SIGKILL
        assert not (run_dir / "iter-1" / "model" / "fem_train.json").exists() or moment != "during fine-tuning"

    result = run_fem(tmp_path, "loop", "--config", recipe.name)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "resumed from" in result.stderr + result.stdout  # the evaluation reused its saved batch
    resumed = json.loads((run_dir / "run.json").read_text())
    assert resumed["status"] == "done" and resumed["resumed"] == len(MOMENTS)
    resumed_files, reference_files = every_file(run_dir), every_file(reference / "runs" / "t")
    assert resumed_files.keys() == reference_files.keys()
    for name in resumed_files:
        assert resumed_files[name] == reference_files[name], name


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
    assert ("| iteration | questions accuracy [95% CI] | questions constant baseline "
            "| questions working-consistent accuracy [95% CI] | questions ECE |") in table
    # One run: compared with its own base model, paired by question, not grouped (no comparison files).
    assert "## Gain over the base model" in table
    assert all(f"| questions | {k} | t | base (iteration 0) | 1 | 12 |" in table for k in (1, 2))
    assert "## Runs grouped by seed" not in table and not (tmp_path / "report" / "comparison.json").exists()
    # Where the time went: one row per stage kind and the total, from run.json.
    record = json.loads((folder / "runs" / "t" / "run.json").read_text())
    wall = sum(stage["seconds"] for stage in record["stages"].values())
    overhead = sum(stage["startup_seconds"] + stage["load_seconds"] for stage in record["stages"].values())
    assert f"| t | all | 9 | {wall:.0f} s |" in table and f"| {overhead / wall:.1%} |" in table
    assert "| t | finetune | 2 |" in table
    assert len([line for line in table.splitlines() if line.startswith("| ") and line[2].isdigit()]) == 3


def test_report_reads_the_names_the_stages_write(tmp_path, tiny_model, questions_file, monkeypatch):
    # Every name renamed in fem_cli.runs: the stages write there and the report still finds it all.
    monkeypatch.setattr(runs, "STAGE_OUTPUTS", {"sample": "draws.jsonl", "filter": "kept.jsonl", "finetune": "weights", "evaluate": "scores"})
    monkeypatch.setattr(runs, "RESULTS_FILE", "metrics.json")
    monkeypatch.setattr(runs, "SUMMARY_SUFFIX", ".drawn.json")
    monkeypatch.setattr(runs, "STATS_SUFFIX", ".counts.json")
    monkeypatch.setattr(runs, "RUN_FILE", "record.json")
    cfg = build_config(LoopConfig, overrides={
        "model": str(tiny_model), "task": str(questions_file), "iterations": 1, "runs_dir": str(tmp_path),
        "train_limit": 4, "eval_limit": 4,
        "sample": {"backend": "hf", "max_new_tokens": 8, "num_samples": 2, "threads": 1},
        "filter": {"min_words": 0}, "evaluate": {"backend": "hf", "max_new_tokens": 8, "threads": 1},
    })
    RunState.open(cfg)
    run_evaluate(stage_config(cfg, "evaluate", 0, cfg.run_dir), on_status=lambda line: None)
    run_sample(stage_config(cfg, "sample", 1, cfg.run_dir), on_status=lambda line: None)
    with contextlib.suppress(FemError):  # the statistics are written even if no sample survives
        run_filter(stage_config(cfg, "filter", 1, cfg.run_dir))
    assert (cfg.run_dir / "iter-1" / "draws.jsonl.drawn.json").is_file()
    base, first = collect_run(cfg.run_dir)
    assert base.accuracy[questions_file.stem]["n"] == 4
    assert first.samples == 8 and first.kept is not None


def test_report_refuses_a_folder_that_is_not_a_run(tmp_path):
    result = runner.invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 2 and "not a fem run folder" in result.output


def test_report_groups_real_runs_by_seed(finished_run, tmp_path):
    folder, _, _ = finished_run
    run = folder / "runs" / "t"
    result = runner.invoke(app, ["report", str(run), str(run), "--out", str(tmp_path / "twice")])
    assert result.exit_code == 2 and "the same config and seed 1" in result.output
    # A copy that claims seed 2 joins the run's group: one group of two seeds, nothing to pair.
    other = tmp_path / "t-s2"
    shutil.copytree(run, other)
    record = json.loads((other / "run.json").read_text())
    record["config"].update(seed=2, name="t-s2")
    (other / "run.json").write_text(json.dumps(record))
    result = runner.invoke(app, ["report", str(run), str(other), "--out", str(tmp_path / "report")])
    assert result.exit_code == 0, result.output
    report = (tmp_path / "report" / "report.md").read_text()
    assert "## Runs grouped by seed" in report and "| t | 1 2 | 2 |" in report
    assert "## Paired comparison" not in report


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


def _stop_at_sampling(state, iteration, stage):
    if stage == "sample":
        raise KeyboardInterrupt


def test_base_eval_is_reused_as_iteration_zero(finished_run, tmp_path, monkeypatch):
    folder, recipe, _ = finished_run
    source = folder / "runs" / "t" / "iter-0" / "eval"
    overrides = {"name": "t-reused", "runs_dir": str(tmp_path), "seed": 2, "base_eval": str(source)}
    cfg = build_config(LoopConfig, recipe=recipe, overrides=overrides)
    monkeypatch.chdir(folder)  # the recipe's task and model paths are relative to the run's folder
    with pytest.raises(KeyboardInterrupt):
        run_loop(cfg, before_stage=_stop_at_sampling)
    copied = cfg.run_dir / "iter-0" / "eval"
    assert sorted(p.name for p in copied.iterdir()) == sorted(p.name for p in source.iterdir())
    assert (copied / "results.json").read_text() == (source / "results.json").read_text()
    stage = json.loads((cfg.run_dir / "run.json").read_text())["stages"]["0/evaluate"]
    assert stage["status"] == "done" and stage["reused_from"] == str(source)
    assert not [p for p in copied.parent.iterdir() if p.name.startswith(".eval.")]  # no staging folder left


def test_base_eval_made_with_another_config_is_refused(finished_run, tmp_path):
    folder, recipe, _ = finished_run
    source = folder / "runs" / "t" / "iter-0" / "eval"
    result = run_fem(folder, "loop", "--config", recipe.name, "--name", "t-other", "--eval-limit", "3", "--base-eval", str(source))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: --base-eval {source}: made with another evaluation config (limit: None there, 3 here)"
    )
    assert not (folder / "runs" / "t-other" / "iter-0" / "eval").exists()
