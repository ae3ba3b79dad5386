"""A label-balanced E-step and verified rationales: `fem sample --permute-choices` (per-draw seeded
choice orders, a consistent training example) and `fem sample --verify` / `fem filter
--require-verified` (a hinted answer must stand without the hint), with backends honouring the
interface: scripted ones whose answers are known, and the tiny model end to end."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fem_cli.answers import extract_answer
from fem_cli.backends import BackendOptions, create_backend
from fem_cli.backends.base import LABEL_PROBS, Completion, SamplingSettings
from fem_cli.backends.label_probs import answer_context
from fem_cli.cli.main import app
from fem_cli.errors import FemError
from fem_cli.filtering import FilterConfig, select
from fem_cli.jsonl import read_jsonl
from fem_cli.models import resolve_model
from fem_cli.prompts import PromptTemplate, build_messages, hint_text
from fem_cli.records import GenerationSettings, Question, Sample, TrainExample
from fem_cli.samplers import SamplerOptions, get_sampler
from fem_cli.samplers.base import Proposal, reward
from fem_cli.verification import verification_summary, verify

runner = CliRunner()
HINT = re.compile(r"The correct answer is ([A-D])\.")


class HintFollower:
    """Writes a rationale ending on the hinted label; reads labels the way a reader would: the
    label whose choice is the last number the reasoning states before its answer marker."""

    name = "scripted"
    capabilities = frozenset({LABEL_PROBS})

    def __init__(self) -> None:
        self.label_queries = []

    def generate(self, requests, settings, on_progress=None):
        labels = [HINT.search(r.messages[-1].content).group(1) for r in requests]
        text = "Working through each choice carefully, one fits the question best.\nAnswer: {}"
        return [[Completion(text=text.format(label), num_tokens=12, finish_reason="stop")] * settings.n for label in labels]

    def label_probabilities(self, queries):
        self.label_queries.extend(queries)
        results = []
        for query in queries:
            context, _ = answer_context(query.completion)
            numbers = re.findall(r"\d+", context)
            shown = re.findall(r"^([A-D])\. (.*)$", query.messages[-1].content, re.MULTILINE)
            chosen = next((label for label, choice in shown if numbers and choice == numbers[-1]), None)
            results.append([1.0 if label == chosen else 0.0 for label in query.labels] if chosen else None)
        return results

    def close(self) -> None:
        pass


def proposal(backend, permute: bool) -> Proposal:
    return Proposal(
        backend=backend, settings=SamplingSettings(), template=PromptTemplate(), sampler="pps", model="scripted",
        seed=0, generation=GenerationSettings(backend="scripted", temperature=0.7, top_p=1.0, max_new_tokens=32, seed=0),
        permute_choices=permute,
    )


def always_a(count: int) -> list[Question]:
    return [Question(id=f"q{i}", question=f"What is {i} plus 3?", choices=[str(i + 3), str(i + 4), str(i + 5), str(i + 30)],
                     labels=["A", "B", "C", "D"], answer="A") for i in range(count)]


def test_permuted_draws_spread_an_always_a_gold_over_all_labels() -> None:
    questions = always_a(40)
    trained: dict[bool, Counter] = {}
    for permute in (False, True):
        samples = get_sampler("pps").run(questions, proposal(HintFollower(), permute), SamplerOptions(num_samples=2))
        examples, _ = select(samples, FilterConfig(samples=["x"], max_per_question=2))
        trained[permute] = Counter(extract_answer(e.completion, ["A", "B", "C", "D"], []) for e in examples)
    assert trained[False] == Counter({"A": 40})  # one label: what training would teach
    shares = {label: trained[True][label] / sum(trained[True].values()) for label in "ABCD"}
    assert all(0.12 <= share <= 0.38 for share in shares.values()), shares


def test_a_permuted_sample_is_consistent_in_its_own_order() -> None:
    questions = always_a(6)
    samples = get_sampler("pps").run(questions, proposal(HintFollower(), True), SamplerOptions(num_samples=3))
    by_id = {q.id: q for q in questions}
    orders = set()
    for sample in samples:
        original = by_id[sample.question_id]
        order = sample.choice_order
        orders.add(tuple(order))
        assert sample.choices == [original.choices[i] for i in order]
        assert sample.choices[sample.labels.index(sample.gold)] == original.choices[0]  # the gold followed its content
        shown = "\n".join(f"{label}. {choice}" for label, choice in zip(sample.labels, sample.choices))
        assert shown in sample.prompt[-1].content and shown in sample.train_prompt[-1].content
        assert f"The correct answer is {sample.gold}." in sample.prompt[-1].content
        answer, score = reward(sample.text, sample.labels, sample.choices, sample.gold)
        assert (sample.extracted, sample.extraction, sample.reward) == (answer.label, answer.extraction, score)
        assert sample.extracted == sample.gold and sample.hint == hint_text(
            original.model_copy(update={"choices": sample.choices, "answer": sample.gold}), PromptTemplate())
    assert len(orders) > 1
    again = get_sampler("pps").run(questions, proposal(HintFollower(), True), SamplerOptions(num_samples=3))
    assert [s.choice_order for s in again] == [s.choice_order for s in samples]  # same seed, same orders


def hinted_sample(text: str, hinted: bool = True) -> Sample:
    """Gold B ("9") of choices 4, 9, 7, 3."""
    q = Question(id="h", question="Ann has 5 apples and finds 4 more. How many now?", choices=["4", "9", "7", "3"],
                 labels=["A", "B", "C", "D"], answer="B")
    template = PromptTemplate()
    answer, score = reward(text, q.labels, q.choices, q.answer)
    return Sample(
        question_id=q.id, sampler="pps" if hinted else "rs", stage="hinted" if hinted else "self", hinted=hinted,
        sample_index=0, prompt=build_messages(q, template, hint=hinted), train_prompt=build_messages(q, template),
        hint=hint_text(q, template) if hinted else None, text=text, num_tokens=20, finish_reason="stop",
        labels=q.labels, choices=q.choices, gold=q.answer, extracted=answer.label,
        extraction=answer.extraction, reward=score, model="m",
        generation=GenerationSettings(backend="hf", temperature=0.7, top_p=1.0, max_new_tokens=32, seed=0), seed=1,
    )


def test_verification_rejects_a_rationale_that_supports_another_label() -> None:
    faithful = hinted_sample("Ann starts with 5 and finds 4 more, so she has 9.\nAnswer: B")
    unfaithful = hinted_sample("Ann starts with 5 and loses 2, and 5 plus 2 is 7.\nAnswer: B")
    wrong = hinted_sample("She has 7 apples.\nAnswer: C")
    self_drawn = hinted_sample("5 and 4 more is 9.\nAnswer: B", hinted=False)
    backend = HintFollower()
    checked = verify([faithful, unfaithful, wrong, self_drawn], backend)
    assert [s.verified for s in checked] == [True, False, False, True]
    assert checked[0].unhinted_label_probs == [0, 1, 0, 0] and checked[1].unhinted_label_probs == [0, 0, 1, 0]
    assert checked[2].unhinted_label_probs is None and checked[3].unhinted_label_probs is None
    # Only correct hinted samples are read, and always after the hint-free prompt.
    assert len(backend.label_queries) == 2
    assert all("The correct answer is" not in m.content for q in backend.label_queries for m in q.messages)
    assert verification_summary(checked) == {
        "pps/hinted": {"correct": 2, "verified": 1, "verified_share": 0.5},
        "rs/self": {"correct": 1, "verified": 1, "verified_share": 1.0},
    }
    kept, stats = select(checked, FilterConfig(samples=["x"], require_verified=True, min_words=0))
    assert [e.completion for e in kept] == [faithful.text, self_drawn.text]
    summary = stats.as_dict()
    assert summary["unverified_dropped"] == 1 and summary["per_stage"]["pps/hinted"]["verified_share"] == 0.5


def test_verify_needs_the_capability() -> None:
    class Blind(HintFollower):
        capabilities = frozenset()

    with pytest.raises(FemError, match="--verify needs a backend with label_probs; the scripted backend has not"):
        verify([hinted_sample("so 9.\nAnswer: B")], Blind())


def test_sample_verify_permute_then_filter_require_verified(tiny_model: Path, tmp_path: Path) -> None:
    # Two labels: the tiny tokenizer tells " A" from " B" by one token (not so all of A-D).
    questions_file = tmp_path / "two.jsonl"
    questions_file.write_text("".join(
        Question(id=f"t{i}", question=f"What is {i} plus 2?", choices=[str(i + 2), str(i + 3)], labels=["A", "B"],
                 answer="AB"[i % 2]).model_dump_json() + "\n" for i in range(12)))
    samples_path = tmp_path / "samples.jsonl"
    args = ["sample", "--model", str(tiny_model), "--task", str(questions_file), "--backend", "hf", 
            "--max-new-tokens", "40", "--num-samples", "4", "--sampler", "pps", "--threads", "1",
            "--permute-choices", "--verify", "--out", str(samples_path)]
    result = runner.invoke(app, args, env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    samples = read_jsonl(samples_path, Sample)
    correct = [s for s in samples if s.reward]
    assert correct, "the tiny model should write some correct answer lines"
    backend, _ = create_backend("hf", resolve_model(str(tiny_model)), BackendOptions(batch_size=4))
    from fem_cli.backends.base import LabelQuery

    expected = backend.label_probabilities([LabelQuery(s.train_prompt, s.text, s.labels) for s in correct])
    assert any(probs is not None for probs in expected)
    for sample, probs in zip(correct, expected):
        if probs is None:  # labels no single token tells apart: cannot be read, so not verified
            assert sample.unhinted_label_probs is None and sample.verified is False
            continue
        assert sample.unhinted_label_probs == pytest.approx(probs, abs=1e-5)
        assert sample.verified == (probs.index(max(probs)) == sample.labels.index(sample.gold))
    assert all(s.verified is False and s.unhinted_label_probs is None for s in samples if not s.reward)
    summary = json.loads(Path(f"{samples_path}.summary.json").read_text())
    stage = summary["stages"]["pps/hinted"]
    assert summary["permute_choices"] and summary["verify"] and stage["verified"] == sum(bool(s.verified) for s in correct)
    # Same seed, same orders.
    again = tmp_path / "again.jsonl"
    assert runner.invoke(app, [*args[:-1], str(again)]).exit_code == 0
    assert [s.choice_order for s in read_jsonl(again, Sample)] == [s.choice_order for s in samples]

    train = tmp_path / "train.jsonl"
    result = runner.invoke(app, ["filter", str(samples_path), "--require-verified", "--min-words", "0", "--out", str(train)])
    verified = [s for s in correct if s.verified]
    if verified:
        assert result.exit_code == 0, result.output
        assert {e.completion for e in read_jsonl(train, TrainExample)} <= {s.text.strip() for s in verified}
    else:
        assert result.exit_code == 2 and "no sample survived the filter" in result.output
    stats = json.loads(Path(f"{train}.stats.json").read_text())
    assert stats["verified"] == len(verified) and stats["unverified_dropped"] == len(correct) - len(verified)


def test_require_verified_refuses_unverified_files(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    path.write_text(hinted_sample("Ann has 9 apples now, I am quite sure.\nAnswer: B").model_dump_json() + "\n")
    result = runner.invoke(app, ["filter", str(path), "--require-verified", "--out", str(tmp_path / "t.jsonl")])
    assert result.exit_code == 2 and "holds samples never verified (sample with --verify)" in result.output
    assert not (tmp_path / "t.jsonl").exists()
