"""Evaluation a label prior cannot fool: choice rotations, the answer and gold distributions, the
constant baseline and the gain over it, circular accuracy and content consistency (by hand), and
`fem evaluate --rotations K` end to end on the tiny model (both protocols)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fem_cli.cli.main import app
from fem_cli.evaluation import RESULTS_FILE
from fem_cli.evaluation.circular import loglik_rotation_is_no_op, present, prior_metrics
from fem_cli.evaluation.metrics import Answer, circular_summary, constant_baseline, gain_over_constant, label_counts
from fem_cli.jsonl import read_jsonl
from fem_cli.records import EvalRecord, Question
from fem_cli.report.collect import IterationFigures
from fem_cli.report.plots import plot_prediction_distribution
from fem_cli.report.tables import markdown_table
from fem_cli.tasks.rotation import content_index, permuted, rotated, rotations

runner = CliRunner()


def question(answer: str = "A", id: str = "q") -> Question:
    return Question(id=id, question="2 + 2?", choices=["4", "5", "6", "7"], labels=["A", "B", "C", "D"], answer=answer)


def test_rotations_move_contents_and_the_gold_follows() -> None:
    q = question("B")  # gold content "5"
    turned = rotations(q, 4)
    assert [r.id for r, _ in turned] == ["q", "q~rot1", "q~rot2", "q~rot3"]
    assert turned[1][0].choices == ["5", "6", "7", "4"] and turned[1][1] == [1, 2, 3, 0]
    for shown, order in turned:
        assert shown.labels == q.labels
        assert shown.choices[shown.labels.index(shown.answer)] == "5"
        assert shown.choices == [q.choices[i] for i in order]
    assert sorted(r.answer for r, _ in turned) == ["A", "B", "C", "D"]  # the gold visits every label
    assert content_index([1, 2, 3, 0], q.labels, "A") == 1 and content_index([1, 2, 3, 0], q.labels, None) is None
    assert rotated(Question(id="p", question="?", choices=["x", "y"], labels=["A", "B"], answer="A"), 1).id == "p~swap"
    assert permuted(q, [3, 2, 1, 0]).answer == "C" and permuted(q, [3, 2, 1, 0]).id == "q"
    assert [order for _, order in rotations(q, 9)] == [order for _, order in turned]  # no order repeats
    with pytest.raises(ValueError, match="is not an order"):
        permuted(q, [0, 0, 1, 2])


def test_distribution_and_constant_baseline_by_hand() -> None:
    assert label_counts(["A", "A", None, "C"], ["A", "B", "C"]) == {"A": 2, "B": 0, "C": 1, "unparsed": 1}
    assert constant_baseline(["A", "A", "B", "C"]) == 0.5 and constant_baseline([]) == 0.0
    # A model that answers A on golds that are mostly A gains nothing over the constant answer.
    groups = [[Answer(gold == "A", gold, 0)] for gold in "AAAB"]
    gain = gain_over_constant(groups, seed=0, resamples=200)
    assert gain["value"] == 0.0 and gain["ci_low"] <= 0 <= gain["ci_high"] and gain["n"] == 4
    # Right on every question: the gain is 1 - baseline, and every resample agrees within [0, 1].
    perfect = gain_over_constant([[Answer(True, gold, 0)] for gold in "AABB"], seed=0, resamples=200)
    assert perfect["value"] == 0.5 and 0 <= perfect["ci_low"] <= perfect["ci_high"] <= 1


def test_circular_summary_by_hand() -> None:
    groups = [
        [Answer(True, "A", 0), Answer(True, "D", 0)],     # right both times, same content
        [Answer(True, "B", 1), Answer(False, "A", 2)],    # right once, different contents
        [Answer(False, "C", 0), Answer(False, "B", None)],  # one unparsed: out of consistency
    ]
    summary = circular_summary(groups, seed=0, resamples=100)
    assert summary["rotations"] == 2 and summary["circular_accuracy"]["value"] == pytest.approx(1 / 3)
    assert summary["mean_accuracy"] == pytest.approx(3 / 6) and summary["per_rotation"] == [pytest.approx(2 / 3), pytest.approx(1 / 3)]
    assert summary["content_consistency"] == {"value": 0.5, "questions": 3, "all_parsed": 2, "consistent": 1}


def test_an_always_a_model_scores_the_baseline_and_fails_circularly() -> None:
    """Golds all A: answering A looks perfect in the given order, and rotation exposes it."""
    presented = present([question("A", f"q{i}") for i in range(5)], 4)
    records = [
        EvalRecord(task="t", question_id=p.question.id, protocol="generative", prompt="", outputs=["Answer: A"],
                   extracted=["A"], prediction="A", gold=p.question.answer, correct=p.question.answer == "A")
        for p in presented
    ]
    metrics = prior_metrics(records, presented, seed=0, resamples=100)
    assert metrics["predictions"] == {"A": 20, "B": 0, "C": 0, "D": 0, "unparsed": 0}
    assert metrics["gold"] == {"A": 5, "B": 5, "C": 5, "D": 5, "unparsed": 0}
    assert metrics["constant_baseline"] == 0.25 and metrics["gain_over_constant"]["value"] == 0.0
    assert metrics["per_rotation"] == [1.0, 0.0, 0.0, 0.0] and metrics["circular_accuracy"]["value"] == 0.0
    assert metrics["content_consistency"]["value"] == 0.0


def test_loglik_rotation_is_a_no_op_only_where_choices_are_not_shown() -> None:
    qs = [question("B")]
    assert loglik_rotation_is_no_op("arc_easy", qs) and loglik_rotation_is_no_op("some_file", qs)
    assert not loglik_rotation_is_no_op("mmlu", qs)


def _evaluate(tiny_model: Path, questions_file: Path, out: Path, *extra: str):
    return runner.invoke(app, ["evaluate", "--model", str(tiny_model), "--task", str(questions_file), "--limit", "4",
                               "--threads", "1", "--bootstrap-resamples", "50", "--out", str(out), *extra],
                         env={"COLUMNS": "300"})


def test_evaluate_rotations_end_to_end(tiny_model: Path, questions_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "eval"
    result = _evaluate(tiny_model, questions_file, out, "--rotations", "4", "--backend", "hf", "--max-new-tokens", "8")
    assert result.exit_code == 0, result.output
    assert "circular accuracy" in result.output and "constant baseline" in result.output
    summary = json.loads((out / RESULTS_FILE).read_text())["tasks"]["questions"]
    assert summary["questions"] == 16 and summary["rotations"] == 4
    records = read_jsonl(out / "questions.jsonl", EvalRecord)
    assert [r.question_id for r in records[:4]] == ["q000", "q000~rot1", "q000~rot2", "q000~rot3"]
    metrics = summary["metrics"]
    assert metrics["gold"] == {"A": 4, "B": 4, "C": 4, "D": 4, "unparsed": 0} and metrics["constant_baseline"] == 0.25
    assert sum(metrics["predictions"].values()) == 16
    assert metrics["predictions"]["unparsed"] == sum(r.prediction is None for r in records)
    correct = [r.correct for r in records]
    assert metrics["mean_accuracy"] == pytest.approx(sum(correct) / 16) == pytest.approx(metrics["accuracy"]["value"])
    assert metrics["circular_accuracy"]["value"] == sum(all(correct[i : i + 4]) for i in range(0, 16, 4)) / 4
    assert metrics["gain_over_constant"]["value"] == pytest.approx(sum(correct) / 16 - 0.25)
    # Rotation 0 is the question as given, with the same derived seed: the plain run's records.
    plain = tmp_path / "plain"
    assert _evaluate(tiny_model, questions_file, plain, "--backend", "hf", "--max-new-tokens", "8").exit_code == 0
    assert [r.outputs for r in read_jsonl(plain / "questions.jsonl", EvalRecord)] == [r.outputs for r in records[::4]]


def test_evaluate_loglik_rotations_say_they_are_a_no_op(tiny_model: Path, questions_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "loglik"
    result = _evaluate(tiny_model, questions_file, out, "--protocol", "loglik", "--rotations", "4")
    assert result.exit_code == 0, result.output
    summary = json.loads((out / RESULTS_FILE).read_text())["tasks"]["questions"]
    assert summary["questions"] == 4 and summary["rotations"] == 1
    metrics = summary["metrics"]
    assert "a rotation only reorders the same scores" in metrics["rotation_no_op"]
    assert metrics["circular_accuracy"] == metrics["accuracy"] and metrics["rotations"] == 4


def test_circular_summary_takes_questions_with_fewer_choices_in_all_their_rotations() -> None:
    groups = [[Answer(True, "A", 0)] * 3, [Answer(True, "A", 0), Answer(False, "B", 1)]]
    summary = circular_summary(groups, seed=0, resamples=50)
    assert summary["rotations"] == 3 and summary["per_rotation"] == [1.0, 0.5, 1.0]
    assert summary["circular_accuracy"]["value"] == 0.5


def test_swap_augment_is_rotations_two(tiny_model: Path, questions_file: Path, tmp_path: Path) -> None:
    result = _evaluate(tiny_model, questions_file, tmp_path / "o", "--rotations", "3", "--swap-augment")
    assert result.exit_code == 2 and "--swap-augment is --rotations 2" in result.output


def test_report_shows_baseline_circular_accuracy_verified_share_and_the_answer_distribution(tmp_path: Path) -> None:
    accuracy = {"value": 0.5, "ci_low": 0.4, "ci_high": 0.6, "n": 40}
    circular = {"value": 0.125, "ci_low": 0.05, "ci_high": 0.2, "n": 10}
    working = {"value": 0.1, "ci_low": 0.025, "ci_high": 0.2, "n": 40}
    metrics = {"constant_baseline": 0.25, "circular_accuracy": circular, "working_consistent_accuracy": working,
               "predictions": {"A": 30, "B": 5, "C": 0, "D": 0, "unparsed": 5},
               "gold": {"A": 10, "B": 10, "C": 10, "D": 10, "unparsed": 0}}
    iterations = [IterationFigures(0, {"arith": accuracy}, {"arith": metrics}),
                  IterationFigures(1, {"arith": accuracy}, {"arith": metrics}, acceptance_rate=0.5, verified_share=0.25)]
    table = markdown_table(iterations).splitlines()
    # A takes 30 of the 40 answers against 25 % of the golds: the run is marked as collapsed.
    assert table[0] == ("| iteration | arith accuracy [95% CI] | arith constant baseline | arith circular accuracy [95% CI] "
                        "| arith working-consistent accuracy [95% CI] | arith answers | acceptance | verified | mean rationale tokens | kept |")
    assert table[3].startswith("| 1 | 50.0% [40.0%, 60.0%] | 25.0% | 12.5% [5.0%, 20.0%] | 10.0% [2.5%, 20.0%] "
                               "| collapse: A 30 of 40, golds 25 % "
                               "| 50.0% | 25.0% |")
    png = plot_prediction_distribution("demo run", iterations, tmp_path)
    assert png == tmp_path / "predictions-demo-run.png" and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plot_prediction_distribution("old", [IterationFigures(0, {"arith": accuracy}, {"arith": {}})], tmp_path) is None
