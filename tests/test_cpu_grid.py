"""The CPU-scale grid (recipes/cpu): every cell exists and loads, every seed is evaluated on the
same 200 or more questions, and `make paper GRID=cpu SEEDS=...` runs each sampler for each seed
(and the reference run where the task has reference solutions) under names and configs that
`fem report` groups by seed."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from fem_cli.config import build_config
from fem_cli.loop.config import LoopConfig, stage_config
from fem_cli.loop.run import plan
from fem_cli.provenance import as_jsonable
from fem_cli.report.compare import NOT_GROUPING

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("smollm2", "qwen-coder-0.5b")
TASKS = ("arith", "arc_easy")
SAMPLERS = ("rs", "star", "pps")
# {model} x {task} x {sampler}, and qwen-coder-0.5b on arith_hard (where it starts between chance
# and ceiling).
CELLS = [(m, t) for m in MODELS for t in TASKS] + [("qwen-coder-0.5b", "arith_hard")]
# The tasks with reference solutions also have a reference cell: the ceiling of the samplers.
REFERENCE_CELLS = [(m, t) for m, t in CELLS if t.startswith("arith")]


@pytest.mark.parametrize(
    ("model", "task", "sampler"),
    [(m, t, s) for m, t in CELLS for s in SAMPLERS] + [(m, t, "reference") for m, t in REFERENCE_CELLS],
)
def test_every_cell_loads_and_evaluates_200_fixed_questions(model, task, sampler):
    cfg = build_config(LoopConfig, recipe=ROOT / "recipes" / "cpu" / f"{model}-{task}-{sampler}.yaml")
    assert (cfg.model, cfg.task, cfg.sampler, cfg.iterations) == (model, task, sampler, 2)
    # Not shuffled: the evaluation's shuffle seed is the run seed, so seeds would see other questions.
    assert cfg.eval_limit >= 200 and not cfg.evaluate.get("shuffle", False)
    assert cfg.sample["backend"] == cfg.evaluate["backend"] == "auto"
    for iteration, stage in plan(cfg):
        stage_config(cfg, stage, iteration, cfg.run_dir)


def test_cpu_grid_has_exactly_its_cells():
    cells = {p.stem for p in (ROOT / "recipes" / "cpu").glob("*.yaml") if not p.name.startswith("_")}
    assert cells == {f"{m}-{t}-{s}" for m, t in CELLS for s in SAMPLERS} | {f"{m}-{t}-reference" for m, t in REFERENCE_CELLS}


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_paper_runs_every_seed_and_reports_them_together(tmp_path):
    # `echo` stands in for fem, and the environment's set-up is taken as done (-o).
    venv = tmp_path / "venv"
    result = subprocess.run(
        ["make", "--no-print-directory", "-s", "paper", "GRID=cpu", "MODEL=qwen-coder-0.5b", "TASK=arith",
         "SEEDS=0 1", f"VENV={venv}", "-o", f"{venv}/.installed", "FEM=echo fem", "LOOP_FEM=echo fem"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )
    lines = [shlex.split(line) for line in result.stdout.splitlines()]
    loops = [line for line in lines if line[1] == "loop"]
    [report] = [line for line in lines if line[1] == "report"]
    configs = []
    for line in loops:
        args = dict(zip(line[2::2], line[3::2]))
        overrides = {"seed": int(args["--seed"]), "name": args["--name"], "runs_dir": args["--runs-dir"]}
        if "--base-eval" in args:
            overrides["base_eval"] = args["--base-eval"]
        configs.append(build_config(LoopConfig, recipe=ROOT / args["--config"], overrides=overrides))
    # arith has reference solutions: a fourth run per seed, first, so that the settings are judged
    # on it before any sampler has run.
    samplers = ("reference", *SAMPLERS)
    assert [(c.sampler, c.seed) for c in configs] == [(s, seed) for seed in (0, 1) for s in samplers]
    # The first run of each seed evaluates the base model; the other runs of that seed reuse that
    # evaluation (another seed's may have other questions: a shuffled evaluation follows the seed).
    first_of_seed = {c.seed: c.run_dir for c in reversed(configs)}
    expected = [None if c.run_dir == first_of_seed[c.seed] else str(first_of_seed[c.seed] / "iter-0" / "eval") for c in configs]
    assert [dict(zip(line[2::2], line[3::2])).get("--base-eval") for line in loops] == expected
    assert expected.count(None) == 2
    assert report[2:-2] == [str(c.run_dir) for c in configs] and report[-2:] == ["--out", "runs/qwen-coder-0.5b-arith-report"]

    def grouping(cfg: LoopConfig) -> dict:
        return {key: value for key, value in as_jsonable(cfg).items() if key not in NOT_GROUPING}

    # The two seeds of a sampler differ only in what the report ignores when grouping.
    for sampler in samplers:
        first, second = (c for c in configs if c.sampler == sampler)
        assert grouping(first) == grouping(second) and first.run_dir != second.run_dir
    assert len({str(grouping(c)) for c in configs}) == 4


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
@pytest.mark.parametrize(("grid", "model", "task"), [("cpu", "smollm2", "arc_easy"), ("paper", "qwen", "mmlu")])
def test_make_paper_without_reference_solutions_runs_the_three_samplers(tmp_path, grid, model, task):
    venv = tmp_path / "venv"
    result = subprocess.run(
        ["make", "--no-print-directory", "-s", "paper", f"GRID={grid}", f"MODEL={model}", f"TASK={task}", "SEEDS=0",
         f"VENV={venv}", "-o", f"{venv}/.installed", "FEM=echo fem", "LOOP_FEM=echo fem"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )
    loops = [shlex.split(line) for line in result.stdout.splitlines() if line.split()[1] == "loop"]
    assert [dict(zip(line[2::2], line[3::2]))["--config"] for line in loops] == [
        f"recipes/{grid}/{model}-{task}-{sampler}.yaml" for sampler in SAMPLERS
    ]


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_paper_puts_its_runs_and_report_in_RUNS(tmp_path):
    venv, runs = tmp_path / "venv", tmp_path / "grid"
    result = subprocess.run(
        ["make", "--no-print-directory", "-s", "paper", "GRID=cpu", "MODEL=smollm2", "TASK=arith", "SEEDS=0",
         f"RUNS={runs}", f"VENV={venv}", "-o", f"{venv}/.installed", "FEM=echo fem", "LOOP_FEM=echo fem"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )
    lines = [shlex.split(line) for line in result.stdout.splitlines()]
    loops = [dict(zip(line[2::2], line[3::2])) for line in lines if line[1] == "loop"]
    assert {args["--runs-dir"] for args in loops} == {str(runs)}
    assert [args.get("--base-eval") for args in loops] == [None] + [f"{runs}/smollm2-arith-reference-s0/iter-0/eval"] * 3
    [report] = [line for line in lines if line[1] == "report"]
    assert report[-1] == f"{runs}/smollm2-arith-report" and all(p.startswith(f"{runs}/") for p in report[2:-2])
