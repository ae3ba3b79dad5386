"""`fem evaluate`: both protocols end to end on the tiny model, the metrics by hand, the loglik
scorer against a naive per-choice forward, lm-eval's prompt formats, and one-line errors.

The slow test evaluates the real SmolLM2 on 20 ARC-Easy validation questions.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from fem_cli.answers import consistency, read_answer
from fem_cli.backends.prefix import cached_prefix_lengths
from fem_cli.cli.main import app
from fem_cli.evaluation import RESULTS_FILE, EvaluateConfig
from fem_cli.evaluation.loglik import (
    ChoiceRequest,
    LoglikEvaluator,
    LoglikScorer,
    choice_request,
    encode_pair,
    pack,
    predictions,
)
from fem_cli.evaluation.generative import correct_by_its_working
from fem_cli.evaluation.metrics import accuracy_summary, bootstrap_interval, majority_vote, subject_breakdown
from fem_cli.jsonl import read_jsonl
from fem_cli.models import load_model, load_tokenizer
from fem_cli.prompts import PromptTemplate, build_messages, render
from fem_cli.records import EvalRecord, Question
from fem_cli.runtime import resolve_dtype

runner = CliRunner()


def evaluate(*args: str):
    return runner.invoke(app, ["evaluate", *args])


def question(text: str, choices: Sequence[str], answer: str = "A", subject: str | None = None, id: str = "q") -> Question:
    labels = [chr(ord("A") + i) for i in range(len(choices))]
    return Question(id=id, question=text, choices=list(choices), labels=labels, answer=answer, subject=subject)


def write_questions(path: Path, questions: Sequence[Question]) -> Path:
    path.write_text("".join(q.model_dump_json() + "\n" for q in questions))
    return path


@pytest.fixture(scope="module")
def tiny(tiny_model: Path):
    return load_model(str(tiny_model)), load_tokenizer(str(tiny_model))


# --- CLI, generative ---------------------------------------------------------------------------


def test_help_has_examples() -> None:
    result = evaluate("--help")
    assert result.exit_code == 0
    assert "fem evaluate --model" in result.output and "--protocol" in result.output


def test_generative_greedy(tiny_model: Path, questions_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "eval"
    result = evaluate("--model", str(tiny_model), "--task", str(questions_file), "--backend", "hf",
                      "--max-new-tokens", "24", "--out", str(out))
    assert result.exit_code == 0, result.output
    results = json.loads((out / RESULTS_FILE).read_text())
    assert results["protocol"] == "generative" and results["split"] == "validation" and results["seed"] == 0
    dtype, why = resolve_dtype("auto", "hf")  # what transformers runs on this machine, and why
    assert results["settings"] == {
        "engine": "hf", "num_samples": 1, "temperature": 0.0, "max_new_tokens": 24,
        "dtype": {"resolved": dtype, "why": why},
    }
    for key in ("config", "command", "versions", "git", "date", "inputs", "wall_seconds", "model_path"):
        assert key in results
    assert str(questions_file) in results["inputs"]
    summary = results["tasks"]["questions"]
    assert summary["questions"] == 12 and summary["file"] == "questions.jsonl"
    metrics = summary["metrics"]
    accuracy = metrics["accuracy"]
    assert 0 <= accuracy["ci_low"] <= accuracy["value"] <= accuracy["ci_high"] <= 1 and accuracy["n"] == 12
    assert 0 <= metrics["parse_failure_rate"] <= 1 and 0 < metrics["mean_rationale_tokens"] <= 24
    assert "subjects" not in metrics  # the fixture's questions carry no subject

    records = read_jsonl(out / "questions.jsonl", EvalRecord)
    questions = read_jsonl(questions_file, Question)
    tokenizer = load_tokenizer(str(tiny_model))
    assert [r.question_id for r in records] == [q.id for q in questions]
    for record, q in zip(records, questions):
        assert record.protocol == "generative" and len(record.outputs) == 1 and record.gold == q.answer
        assert record.prompt == render(tokenizer, build_messages(q, PromptTemplate(), hint=False))
        assert record.prediction == record.extracted[0]
        assert record.extraction == [read_answer(record.outputs[0], q.labels, q.choices).extraction]
        assert record.correct == (record.prediction == q.answer)
        assert record.consistent == [consistency(record.outputs[0], q.labels, q.choices)]
    assert accuracy["value"] == sum(r.correct for r in records) / 12
    working = sum(r.correct and r.consistent == [True] for r in records) / 12
    assert metrics["working_consistent_accuracy"]["value"] == working <= accuracy["value"]
    failures = sum(r.prediction is None for r in records) / 12
    assert metrics["parse_failure_rate"] == pytest.approx(failures)


def test_majority_vote_is_deterministic(tiny_model: Path, questions_file: Path, tmp_path: Path) -> None:
    runs = []
    for name in ("first", "second"):
        out = tmp_path / name
        result = evaluate("--model", str(tiny_model), "--task", str(questions_file), "--backend", "hf",
                          "--num-samples", "3", "--max-new-tokens", "16", "--seed", "5", "--out", str(out))
        assert result.exit_code == 0, result.output
        runs.append(out)
    assert (runs[0] / "questions.jsonl").read_bytes() == (runs[1] / "questions.jsonl").read_bytes()
    results = json.loads((runs[0] / RESULTS_FILE).read_text())
    assert results["settings"]["num_samples"] == 3 and results["settings"]["temperature"] == 0.7
    records = read_jsonl(runs[0] / "questions.jsonl", EvalRecord)
    assert all(len(r.outputs) == 3 and len(r.extracted) == 3 for r in records)
    for record in records:
        assert (record.prediction, record.vote_share) == majority_vote(record.extracted)
    # Sampled at temperature 0.7 from a random model: the three draws are not all identical.
    assert any(len(set(r.outputs)) > 1 for r in records)
    answers = [a for r in records for a in r.extracted]
    assert results["tasks"]["questions"]["metrics"]["parse_failure_rate"] == pytest.approx(answers.count(None) / 36)


# --- metrics by hand ---------------------------------------------------------------------------


def _record(outputs: list[str], gold: str) -> EvalRecord:
    labels, choices = ["A", "B", "C"], ["53", "159", "160"]
    extracted = [read_answer(text, labels, choices).label for text in outputs]
    prediction, share = majority_vote(extracted)
    return EvalRecord(task="arith", question_id="q", protocol="generative", prompt="p", outputs=outputs,
                      extracted=extracted, prediction=prediction, gold=gold, correct=prediction == gold,
                      vote_share=share, consistent=[consistency(text, labels, choices) for text in outputs])


def test_working_consistent_accuracy_counts_correct_answers_their_working_reaches() -> None:
    reached = "31 + 22 = 53. 53 x 3 = 159.\nAnswer: B"
    contradicted = "31 + 22 = 53. 53 x 3 = 160.\nAnswer: B"  # the working reaches C, the answer line says B
    no_working = "Answer: B"
    assert correct_by_its_working(_record([reached], gold="B"))
    assert not correct_by_its_working(_record([reached], gold="C"))  # consistent, but wrong
    assert not correct_by_its_working(_record([contradicted], gold="B"))
    assert not correct_by_its_working(_record([no_working], gold="B"))
    # A vote: every output that gave the prediction must reach it; the others do not count.
    assert correct_by_its_working(_record([reached, reached, "53 x 3 = 160.\nAnswer: C"], gold="B"))
    assert not correct_by_its_working(_record([reached, contradicted], gold="B"))
    # Records written before fem read the working count as not reached.
    assert not correct_by_its_working(_record([reached], gold="B").model_copy(update={"consistent": None}))



def test_majority_vote_by_hand() -> None:
    assert majority_vote(["A", "B", "B"]) == ("B", pytest.approx(2 / 3))
    assert majority_vote(["B", "A", "A", "B"]) == ("B", 0.5)  # tie: B appeared first
    assert majority_vote([None, "D", "A"]) == ("D", pytest.approx(1 / 3))  # None does not vote
    assert majority_vote([None, None, "C", None]) == ("C", 0.25)  # ... but counts in the share
    assert majority_vote([None, None]) == (None, 0.0)


def test_bootstrap_interval_by_hand() -> None:
    # Two questions, one right: a resample's accuracy is 0, 1/2 or 1 with probability 1/4, 1/2,
    # 1/4, so the 2.5th and 97.5th percentiles of 1000 resamples are 0 and 1.
    assert bootstrap_interval([False, True], seed=0) == (0.0, 1.0)
    assert bootstrap_interval([True] * 7, seed=3) == (1.0, 1.0)
    assert bootstrap_interval([False] * 7, seed=3) == (0.0, 0.0)
    # 400 questions at 50 %: the interval is about 0.5 +- 1.96 * sqrt(0.25 / 400) = 0.5 +- 0.049.
    low, high = bootstrap_interval([True, False] * 200, seed=1)
    assert 0.44 <= low <= 0.46 and 0.54 <= high <= 0.56
    assert bootstrap_interval([True, False, False] * 20, seed=4) == bootstrap_interval([True, False, False] * 20, seed=4)
    summary = accuracy_summary([True, False, True, True], seed=0)
    assert summary["value"] == 0.75 and summary["n"] == 4 and summary["ci_low"] <= 0.75 <= summary["ci_high"]


def test_subject_breakdown_by_hand() -> None:
    correct = [True, True, False, False, True]
    subjects = ["math", "math", "math", "biology", None]
    breakdown = subject_breakdown(correct, subjects)
    assert breakdown["subjects"] == {
        "biology": {"n": 1, "accuracy": 0.0},
        "math": {"n": 3, "accuracy": pytest.approx(2 / 3)},
        "none": {"n": 1, "accuracy": 1.0},
    }
    assert breakdown["macro_accuracy"] == pytest.approx((0 + 2 / 3 + 1) / 3)
    assert breakdown["micro_accuracy"] == pytest.approx(3 / 5)
    assert subject_breakdown([True, False], [None, None]) is None


# --- loglik ------------------------------------------------------------------------------------


def naive_logliks(model, tokenizer, request: ChoiceRequest) -> list[float]:
    """One full forward of context + continuation per choice, summing the continuation's log-probs."""
    import torch

    values = []
    for continuation in request.continuations:
        context_ids, continuation_ids = encode_pair(tokenizer, request.context, continuation)
        with torch.no_grad():
            logits = model(torch.tensor([context_ids + continuation_ids])).logits[0].float()
        logprobs = torch.log_softmax(logits, dim=-1)
        values.append(sum(float(logprobs[len(context_ids) - 1 + i, t]) for i, t in enumerate(continuation_ids)))
    return values


def test_shared_context_scorer_matches_naive_forward(tiny, monkeypatch) -> None:
    model, tokenizer = tiny
    questions = [
        (question("Which of these animals is a mammal?", ["shark", "a dolphin breathes air with lungs", "trout", "octopus"], subject="biology"), "arc_easy"),
        (question("plants need", ["sunlight and water to grow", "metals"]), "openbookqa"),
        (question("What is 7 plus 5?", ["12", "13", "35", "2", "75"], subject="elementary_mathematics"), "mmlu"),
        (question("first we add the numbers, then we compare the result with each choice", ["x", "the closest one", "y z"]), "arc_challenge"),
        (question("The sun is a", ["star", "planet"]), "openbookqa"),
        # Same subject, same length: one batch whose contexts share the subject line.
        (question("What is 8 plus 5?", ["13", "12", "3", "40"], subject="elementary_mathematics"), "mmlu"),
        (question("What is 9 plus 5?", ["14", "13", "4", "45"], subject="elementary_mathematics"), "mmlu"),
    ]
    requests = [choice_request(task, q) for q, task in questions]
    # Batches of two: left-padded contexts of different lengths, 2 to 5 choices, 1 to 8 tokens
    # each, and prefixes of different lengths read from a cache (the MMLU subject line, and the
    # openbookqa pair's first word, each shared by at least two contexts).
    scorer = LoglikScorer(model, tokenizer, batch_size=2, min_sharing=2)
    encoded_prefixes = []
    encode_prefixes = scorer._encode_prefixes
    monkeypatch.setattr(scorer, "_encode_prefixes", lambda prefixes: encoded_prefixes.extend(prefixes) or encode_prefixes(prefixes))
    batched = scorer.score(requests)
    assert len(encoded_prefixes) >= 2
    assert max(len(prefix) for prefix in encoded_prefixes) > 10  # the MMLU questions' subject line
    for request, logliks in zip(requests, batched):
        assert logliks == pytest.approx(naive_logliks(model, tokenizer, request), abs=1e-4)


def test_pack_layout_by_hand() -> None:
    # Question 0: context [1, 2], choices [3, 4] and [5]; question 1: context [6], choice [7, 8, 9].
    packed = pack([([1, 2], [[3, 4], [5]]), ([6], [[7, 8, 9]])], pad=0)
    assert packed.span == 2
    assert packed.ids == [[1, 2, 3, 0], [0, 6, 7, 8]]
    assert packed.positions == [[0, 1, 2, 0], [0, 0, 1, 2]]
    assert packed.segments == [[0, 0, 1, -1], [-1, 0, 1, 1]]
    assert packed.targets == [[4, 0], [8, 9]]


def test_pack_layout_after_a_shared_prefix_by_hand() -> None:
    # Both contexts start with [1, 2]: rows hold what follows, positions continue after it.
    packed = pack([([1, 2, 3], [[4], [5]]), ([1, 2, 6, 7], [[8, 9]])], pad=0, cached=[2, 2])
    assert packed.span == 1
    assert packed.ids == [[0, 3, 0], [6, 7, 8]]
    assert packed.positions == [[0, 2, 0], [2, 3, 4]]
    assert packed.segments == [[-1, 0, -1], [0, 0, 1]]
    assert packed.targets == [[0], [9]]


def test_pack_layout_after_prefixes_of_different_lengths_by_hand() -> None:
    # Row 0 reads 1 token from the cache, row 1 reads 3: each row's positions go on after its own.
    packed = pack([([1, 2, 3], [[4], [5]]), ([1, 5, 6, 7], [[8, 9]])], pad=0, cached=[1, 3])
    assert packed.ids == [[2, 3, 0], [0, 7, 8]]
    assert packed.positions == [[1, 2, 0], [0, 3, 4]]
    assert packed.segments == [[0, 0, -1], [-1, 0, 1]]


def test_cached_prefix_lengths_by_hand() -> None:
    rows = [[1, 2, 3, 4], [1, 2, 3, 5], [1, 2, 6], [1, 2, 3, 4, 7], [9, 9]]
    # Shared by two: [1, 2, 3, 4] by rows 0 and 3 (row 0 keeps its last token), [1, 2, 3] by
    # rows 0, 1, 3; row 2 shares [1, 2]; row 4 shares nothing.
    assert cached_prefix_lengths(rows, 2) == [3, 3, 2, 4, 0]
    assert cached_prefix_lengths(rows, 3) == [3, 3, 2, 3, 0]
    assert cached_prefix_lengths(rows, 4) == [2, 2, 2, 2, 0]
    assert cached_prefix_lengths(rows, 6) == [0, 0, 0, 0, 0]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.integers(0, 2), min_size=1, max_size=6), max_size=12), st.integers(2, 5))
def test_cached_prefix_is_the_longest_that_enough_rows_share(rows, min_sharing) -> None:
    def sharing(prefix: list[int]) -> int:
        return sum(row[: len(prefix)] == prefix for row in rows)

    for row, length in zip(rows, cached_prefix_lengths(rows, min_sharing)):
        assert length <= len(row) - 1
        assert length == 0 or sharing(row[:length]) >= min_sharing
        if length < len(row) - 1:
            assert sharing(row[: length + 1]) < min_sharing


def test_encode_pair_moves_trailing_space_to_the_continuation(tiny) -> None:
    _, tokenizer = tiny
    assert encode_pair(tokenizer, "first we add ", "the numbers") == encode_pair(tokenizer, "first we add", " the numbers")
    context_ids, continuation_ids = encode_pair(tokenizer, "first we add", " the numbers")
    assert context_ids + continuation_ids == tokenizer.encode("first we add the numbers")


def test_acc_and_acc_norm_by_hand() -> None:
    # acc: the highest log-likelihood (-3.0, choice 1); acc_norm: per character of the choice,
    # -4/1, -3/2, -6/6 -> choice 2.
    best, best_norm, confidence = predictions([-4.0, -3.0, -6.0], ["a", "bb", "cccccc"])
    assert (best, best_norm) == (1, 2)
    assert confidence == pytest.approx(math.exp(-3) / (math.exp(-4) + math.exp(-3) + math.exp(-6)))
    assert predictions([-1.0, -1.0], ["x", "y"])[:2] == (0, 0)  # ties: the first choice


class FixedScorer:
    """Stands in for LoglikScorer with given log-likelihoods."""

    batch_size = 1

    def __init__(self, logliks: list[list[float]]) -> None:
        self.logliks = logliks

    def score(self, requests, on_progress=None) -> list[list[float]]:
        return self.logliks


def test_loglik_evaluator_scores_acc_and_acc_norm() -> None:
    questions = [
        question("q one", ["a", "bb", "cccccc"], answer="C", id="1"),  # acc picks B, acc_norm picks C
        question("q two", ["aaaa", "b"], answer="A", id="2"),  # -2/4 vs -1/1: both pick A
    ]
    evaluator = LoglikEvaluator(FixedScorer([[-4.0, -3.0, -6.0], [-2.0, -2.5]]), seed=0, resamples=100)
    records, metrics = evaluator.evaluate("arc_easy", questions)
    assert [r.prediction for r in records] == ["B", "A"] and [r.correct for r in records] == [False, True]
    assert records[0].loglik == [-4.0, -3.0, -6.0] and records[0].outputs == [" a", " bb", " cccccc"]
    assert records[0].prompt == "Question: q one\nAnswer:" and records[0].extracted == ["A", "B", "C"]
    assert metrics["accuracy"]["value"] == 0.5 and metrics["acc_norm"]["value"] == 1.0


def test_lm_eval_prompt_formats() -> None:
    arc = question("Which gas do plants take in?", ["oxygen", "carbon dioxide"])
    assert choice_request("arc_easy", arc) == ChoiceRequest("Question: Which gas do plants take in?\nAnswer:", ["oxygen", "carbon dioxide"])
    assert choice_request("arc_challenge", arc).continuations == [" oxygen", " carbon dioxide"]
    assert choice_request("my_questions", arc) == choice_request("arc_easy", arc)  # files read as ARC
    obqa = question("The sun is responsible for", ["puppies learning new tricks", "plants sprouting"])
    assert choice_request("openbookqa", obqa) == ChoiceRequest("The sun is responsible for", ["puppies learning new tricks", "plants sprouting"])
    mmlu = question("  What is 2 + 2?\n", ["3", "4", "5", "22"], subject="high_school_mathematics")
    request = choice_request("mmlu:high_school_mathematics", mmlu)
    assert request.context == (
        "The following are multiple choice questions (with answers) about high school mathematics.\n\n"
        "What is 2 + 2?\nA. 3\nB. 4\nC. 5\nD. 22\nAnswer:"
    )
    assert request.continuations == [" A", " B", " C", " D"]


def test_loglik_per_subject_macro_and_micro(tiny_model: Path, tmp_path: Path) -> None:
    mixed = [
        question("What is 2 plus 5?", ["7", "8", "10", "3"], "A", "math", "m1"),
        question("What is 3 plus 6?", ["9", "10", "18", "3"], "B", "math", "m2"),
        question("What is 4 plus 4?", ["8", "16", "0", "44"], "C", "math", "m3"),
        question("Which animal is a mammal?", ["shark", "dolphin", "trout"], "B", "biology", "b1"),
        question("Which animal breathes with gills?", ["shark", "dolphin"], "A", "biology", "b2"),
    ]
    path = write_questions(tmp_path / "mixed.jsonl", mixed)
    out = tmp_path / "eval"
    result = evaluate("--model", str(tiny_model), "--task", str(path), "--protocol", "loglik", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "per subject" in result.output and "macro average" in result.output
    metrics = json.loads((out / RESULTS_FILE).read_text())["tasks"]["mixed"]["metrics"]
    records = read_jsonl(out / "mixed.jsonl", EvalRecord)
    assert all(r.protocol == "loglik" and len(r.loglik) == len(r.outputs) for r in records)
    by_subject = {s: [r.correct for r in records if r.subject == s] for s in ("biology", "math")}
    expected = {s: sum(v) / len(v) for s, v in by_subject.items()}
    assert {s: e["accuracy"] for s, e in metrics["subjects"].items()} == pytest.approx(expected)
    assert metrics["macro_accuracy"] == pytest.approx(sum(expected.values()) / 2)
    assert metrics["micro_accuracy"] == pytest.approx(sum(r.correct for r in records) / 5)
    assert 0 <= metrics["acc_norm"]["value"] <= 1


def test_loglik_on_a_lora_adapter_folder(tiny_model: Path, tmp_path: Path) -> None:
    from peft import LoraConfig, get_peft_model

    # A fresh LoRA adapter adds zero (its B matrices start at 0): same log-likelihoods as the base.
    adapter = tmp_path / "adapter"
    peft_model = get_peft_model(load_model(str(tiny_model)), LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    peft_model.save_pretrained(adapter)
    path = write_questions(tmp_path / "few.jsonl", [question("What is 2 plus 5?", ["7", "8", "10"], id="a")])
    runs = {}
    for name, model in (("base", tiny_model), ("adapter", adapter)):
        result = evaluate("--model", str(model), "--task", str(path), "--protocol", "loglik", "--out", str(tmp_path / name))
        assert result.exit_code == 0, result.output
        runs[name] = read_jsonl(tmp_path / name / "few.jsonl", EvalRecord)[0].loglik
    assert json.loads((tmp_path / "adapter" / RESULTS_FILE).read_text())["adapter"] == str(adapter)
    assert runs["adapter"] == pytest.approx(runs["base"], abs=1e-5)


# --- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--protocol", "loglike"], "unknown protocol 'loglike' (did you mean 'loglik'?)"),
        (["--task", "arc_chalenge"], "unknown task 'arc_chalenge' (did you mean 'arc_challenge'?)"),
        (["--task", "nope/missing.jsonl"], "nope/missing.jsonl: no such file or folder"),
        (["--num-samples", "0"], "num_samples must be >= 1"),
        (["--num-samples", "3", "--temperature", "0"], "num_samples > 1 needs temperature > 0"),
        (["--protocol", "loglik", "--num-samples", "2"], "num_samples applies to --protocol generative only"),
    ],
)
def test_bad_options_fail_in_one_line(args: list[str], message: str, tmp_path: Path) -> None:
    defaults = {"--task": "arc_easy"}
    given = dict(zip(args[::2], args[1::2]))
    result = evaluate(*[item for pair in {**defaults, **given}.items() for item in pair], "--out", str(tmp_path / "o"))
    assert result.exit_code == 2
    assert message in result.output and len(result.output.strip().splitlines()) == 1


def test_bad_question_file_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    good = question("What is 1 plus 1?", ["2", "3"]).model_dump_json()
    path.write_text(good + "\n" + '{"id": "x", "question": "?", "choices": ["a", "b"], "labels": ["A", "B"], "answer": "Z"}\n')
    result = evaluate("--model", "nowhere/model", "--task", str(path), "--out", str(tmp_path / "o"))
    assert result.exit_code == 2
    assert f"{path}:2" in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_config_resolves_the_vote_temperature() -> None:
    assert EvaluateConfig(task="arc_easy").sampling_temperature == 0.0
    assert EvaluateConfig(task="arc_easy", num_samples=5).sampling_temperature == 0.7
    assert EvaluateConfig(task="arc_easy,openbookqa", num_samples=5, temperature=1.0).tasks == ["arc_easy", "openbookqa"]


# --- the real model ----------------------------------------------------------------------------


@pytest.mark.slow
def test_smollm2_on_arc_easy(shared_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "eval"
    result = evaluate("--model", "smollm2", "--task", "arc_easy", "--split", "validation", "--data-dir", str(shared_data),
                      "--limit", "10", "--max-new-tokens", "128", "--backend", "hf", "--out", str(out))
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / RESULTS_FILE).read_text())["tasks"]["arc_easy"]["metrics"]
    assert 0 <= metrics["accuracy"]["value"] <= 1 and metrics["accuracy"]["n"] == 10
    assert metrics["parse_failure_rate"] < 1
    assert len(read_jsonl(out / "arc_easy.jsonl", EvalRecord)) == 10
