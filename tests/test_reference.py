"""The reference sampler: a task's worked solutions written as samples without a model, refused for
a task that has none, taken by `fem filter`, `fem finetune` and `fem loop` like any sampler's, and
the report's ceiling: the reference row and each accuracy's share of base→reference."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli_helpers import assert_one_line_error, fem
from fem_cli.config import build_config
from fem_cli.errors import FemError
from fem_cli.jsonl import read_jsonl
from fem_cli.loop.config import LoopConfig, stage_config
from fem_cli.loop.run import plan
from fem_cli.records import Sample, TrainExample
from fem_cli.report.ceiling import CAPTION
from fem_cli.tasks.arith import generate, generate_hard, solution, solution_hard
from fem_cli.tasks.rotation import permuted
from test_compare import BASE, ITERATION_1, make_run

REFUSAL = "has no reference solutions; tasks that have them: arith, arith_hard"


def no_model(*args, **kwargs):
    raise AssertionError("the reference sampler must not resolve or load a model")


def test_reference_samples_are_the_worked_solutions_and_load_no_model(tmp_path, monkeypatch):
    monkeypatch.setattr("fem_cli.sample.resolve_model", no_model)
    monkeypatch.setattr("fem_cli.backends.create_backend", no_model)
    out = tmp_path / "reference.jsonl"
    args = ["sample", "--task", "arith_hard", "--split", "train", "--limit", "8", "--sampler", "reference",
            "--model", tmp_path / "no-such-model", "--num-samples", "3", "--permute-choices", "--verify", "--out", out]
    result = fem(*args)
    assert result.exit_code == 0, result.output
    samples = read_jsonl(out, Sample)
    questions = {q.id: q for q in generate_hard("train")[:8]}
    # One per question, in question order, whatever --num-samples says (copies would be duplicates).
    assert [s.question_id for s in samples] == list(questions)
    for sample in samples:
        question = questions[sample.question_id]
        assert (sample.sampler, sample.stage, sample.sample_index, sample.hinted, sample.hint) == ("reference", "reference", 0, False, None)
        assert sample.reward == 1.0 and sample.extracted == sample.gold and sample.verified is True
        # What made it: the task's writer, nothing generated, no sampling settings.
        assert (sample.model, sample.generation, sample.num_tokens, sample.finish_reason) == ("reference:arith_hard", None, 0, "stop")
        # Shown in its own seeded order, the gold following its content, the text naming that label.
        shown = permuted(question, sample.choice_order)
        assert (sample.choices, sample.gold) == (shown.choices, shown.answer)
        assert sample.choices[sample.labels.index(sample.gold)] == question.choices[question.labels.index(question.answer)]
        assert sample.text == solution_hard(shown)
        # Sent to no model: the prompt is the hint-free one training uses, with the choices as shown.
        assert sample.prompt == sample.train_prompt and f"{sample.gold}. {sample.choices[sample.labels.index(sample.gold)]}" in sample.prompt[-1].content
    assert any(sample.choice_order != [0, 1, 2, 3] for sample in samples)
    summary = json.loads(Path(f"{out}.summary.json").read_text())
    stage = summary["stages"]["reference/reference"]
    assert (summary["backend"], summary["dtype"], summary["samples"]) == ("reference", None, 8)
    assert (stage["samples"], stage["accepted"], stage["verified"], stage["tokens_generated"]) == (8, 8, 8, 0)
    assert stage["mean_rationale_tokens"] is None and stage["tokens_per_second"] is None
    assert "–" in result.output  # the table's token columns, not a made-up 0
    again = tmp_path / "again.jsonl"
    assert fem(*args[:-1], again).exit_code == 0
    assert again.read_bytes() == out.read_bytes()


def test_without_permuted_choices_the_sample_is_the_questions_own_solution(tmp_path):
    out = tmp_path / "reference.jsonl"
    assert fem("sample", "--task", "arith", "--limit", "3", "--sampler", "reference", "--out", out).exit_code == 0
    samples = read_jsonl(out, Sample)
    assert [s.text for s in samples] == [solution(q) for q in generate("train")[:3]]  # --split train by default
    assert all(s.choice_order is None and s.reward == 1.0 for s in samples)


@pytest.mark.parametrize(("task", "named"), [("arc_easy", "task 'arc_easy'"), ("mmlu:anatomy", "task 'mmlu:anatomy'")])
def test_a_task_without_reference_solutions_is_refused(tmp_path, task, named):
    out = tmp_path / "reference.jsonl"
    result = fem("sample", "--task", task, "--sampler", "reference", "--out", out)
    assert_one_line_error(result, f"{named} {REFUSAL}")
    assert not list(tmp_path.iterdir())


def test_a_question_file_is_refused(tmp_path, questions_file):
    result = fem("sample", "--task", questions_file, "--sampler", "reference", "--out", tmp_path / "out.jsonl")
    assert_one_line_error(result, f"(not a built-in task) {REFUSAL}")


def test_a_reference_loop_is_checked_before_its_first_stage(tmp_path):
    cfg = build_config(LoopConfig, overrides={"task": "arith_hard", "sampler": "reference", "runs_dir": str(tmp_path)})
    assert cfg.name == "smollm2-arith_hard-reference"
    sample = stage_config(cfg, "sample", 1, cfg.run_dir)
    assert (sample.sampler, sample.task) == ("reference", "arith_hard")
    for iteration, stage in plan(cfg):
        stage_config(cfg, stage, iteration, cfg.run_dir)
    refused = build_config(LoopConfig, overrides={"task": "arc_easy", "sampler": "reference", "runs_dir": str(tmp_path)})
    with pytest.raises(FemError, match=f"loop sample section: task 'arc_easy' {REFUSAL}"):
        stage_config(refused, "sample", 1, refused.run_dir)
    result = fem("loop", "--task", "arc_easy", "--sampler", "reference", "--runs-dir", tmp_path / "runs")
    assert_one_line_error(result, REFUSAL)
    assert not (tmp_path / "runs").exists()


def test_filter_and_finetune_take_reference_samples(tiny_model, tmp_path):
    samples, train, model = tmp_path / "reference.jsonl", tmp_path / "train.jsonl", tmp_path / "model"
    assert fem("sample", "--task", "arith", "--split", "train", "--limit", "6", "--sampler", "reference",
               "--permute-choices", "--out", samples).exit_code == 0
    result = fem("filter", samples, "--out", train)
    assert result.exit_code == 0, result.output
    examples = read_jsonl(train, TrainExample)
    written = read_jsonl(samples, Sample)
    assert [(e.question_id, e.completion, e.prompt, e.stage) for e in examples] == [
        (s.question_id, s.text, s.train_prompt, "reference") for s in written
    ]
    stats = json.loads(Path(f"{train}.stats.json").read_text())
    assert stats["per_stage"]["reference/reference"]["kept"] == 6
    result = fem("finetune", "--model", tiny_model, "--train", train, "--out", model, "--epochs", "1",
                 "--batch-size", "3", "--learning-rate", "1e-3")
    assert result.exit_code == 0, result.output
    record = json.loads((model / "fem_train.json").read_text())
    assert record["counts"]["kept"] == 6


# --- the report's ceiling -------------------------------------------------------------------------


def groups_table(report: str) -> dict[str, dict[str, str]]:
    """`run/iteration` -> {column: cell} of report.md's table of groups."""
    lines = report.split("## Runs grouped by seed", 1)[1].strip().splitlines()
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    rows = {}
    for line in lines[2:]:
        if not line.startswith("|"):
            break
        cells = dict(zip(header, (cell.strip() for cell in line.strip("|").split("|"))))
        rows[f"{cells['run']}/{cells['iteration']}"] = cells
    return rows


def report(tmp_path: Path, reference: str) -> str:
    folders = [make_run(tmp_path, sampler, seed, {0: BASE, 1: ITERATION_1[sampler, seed]}) for sampler in ("rs", "pps") for seed in (0, 1)]
    folders += [make_run(tmp_path, "reference", seed, {0: BASE, 1: reference}) for seed in (0, 1)]
    result = fem("report", *folders, "--out", tmp_path / "report")
    assert result.exit_code == 0, result.output
    return (tmp_path / "report" / "report.md").read_text()


def test_report_measures_every_sampler_against_the_reference(tmp_path):
    text = report(tmp_path, reference="1111111110")  # 90 %; the base model 50 %
    rows = groups_table(text)
    column = "arith share of base→reference"
    assert rows["m-arith-reference/1"]["arith accuracy"] == "90.0% ± 0.0"
    # (mean accuracy - 50 %) / (90 % - 50 %): rs 40 % -> -25 %, pps 80 % -> 75 %, the reference itself 100 %.
    assert [rows[f"m-arith-{s}/1"][column] for s in ("rs", "pps", "reference")] == ["-25%", "75%", "100%"]
    assert {rows[f"m-arith-{s}/0"][column] for s in ("rs", "pps", "reference")} == {"–"}
    assert CAPTION in text
    assert "| arith | 1 | m-arith-reference | m-arith-rs |" in text  # the paired tests include it


def test_a_reference_no_better_than_the_base_is_said_so(tmp_path):
    rows = groups_table(report(tmp_path, reference="1111000000"))  # 40 %, below the base's 50 %
    assert rows["m-arith-pps/1"]["arith share of base→reference"] == "none: reference 40.0% ≤ base 50.0%"


def test_no_reference_run_no_share_column(tmp_path):
    folders = [make_run(tmp_path, sampler, 0, {0: BASE, 1: ITERATION_1[sampler, 0]}) for sampler in ("rs", "pps")]
    assert fem("report", *folders, "--out", tmp_path / "report").exit_code == 0
    text = (tmp_path / "report" / "report.md").read_text()
    assert "share of base→reference" not in text and CAPTION not in text


def test_a_loop_trains_on_reference_solutions(tiny_model, tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        f"name: ref\nruns_dir: {tmp_path / 'runs'}\nmodel: {tiny_model}\ntask: arith\nsampler: reference\n"
        "iterations: 1\ntrain_limit: 4\neval_limit: 2\n"
        # A recipe written for the samplers that generate works as it is: the model options and
        # verification need no model here (an un-hinted sample is verified by its reward).
        "sample: {backend: hf, num_samples: 4, max_new_tokens: 16, permute_choices: true, verify: true}\n"
        "filter: {require_verified: true}\n"
        "finetune: {epochs: 1, batch_size: 4, learning_rate: 1.0e-3}\n"
        "evaluate: {backend: hf, max_new_tokens: 8}\n"
    )
    result = fem("loop", "--config", recipe)
    assert result.exit_code == 0, result.output
    run = tmp_path / "runs" / "ref"
    samples = read_jsonl(run / "iter-1" / "samples.jsonl", Sample)
    assert len(samples) == 4 and all(s.stage == "reference" and s.reward == 1.0 for s in samples)
    assert len(read_jsonl(run / "iter-1" / "train.jsonl", TrainExample)) == 4
    assert (run / "iter-1" / "eval" / "results.json").is_file()
