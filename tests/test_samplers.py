"""Sampler and filter logic, driven by a scripted backend whose answers are known in advance."""

from __future__ import annotations

import re

import pytest

from fem_cli.backends.base import Completion, SamplingSettings
from fem_cli.errors import FemError
from fem_cli.filtering import FilterConfig, select
from fem_cli.prompts import PromptTemplate, hint_text
from fem_cli.records import GenerationSettings, Question, Sample
from fem_cli.samplers import SamplerOptions, get_sampler
from fem_cli.samplers.base import Proposal

from conftest import make_questions

HINT = re.compile(r"The correct answer is ([A-D])\.")


class ScriptedBackend:
    """Un-hinted prompts are always answered "A"; hinted prompts follow the hint."""

    name = "scripted"

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], int]] = []

    def generate(self, requests, settings, on_progress=None):
        answers = []
        for request in requests:
            hint = HINT.search(request.messages[-1].content)
            answers.append(hint.group(1) if hint else "A")
        self.calls.append(([r.messages[-1].content for r in requests], settings.n))
        return [
            [Completion(text=f"Adding the two numbers step by step gives the sum.\nAnswer: {a}", num_tokens=12, finish_reason="stop")] * settings.n
            for a in answers
        ]

    def close(self) -> None:
        pass


def proposal(backend, sampler: str) -> Proposal:
    return Proposal(
        backend=backend,
        settings=SamplingSettings(),
        template=PromptTemplate(),
        sampler=sampler,
        model="scripted",
        seed=0,
        generation=GenerationSettings(backend="scripted", temperature=0.7, top_p=1.0, max_new_tokens=32, seed=0),
    )


@pytest.fixture
def questions() -> list[Question]:
    return [Question.model_validate(q) for q in make_questions(8)]


def test_star_rationalizes_exactly_the_failed_questions(questions):
    backend = ScriptedBackend()
    samples = get_sampler("star").run(questions, proposal(backend, "star"), SamplerOptions(num_samples=2))
    solved_first = {q.id for q in questions if q.answer == "A"}
    rationalized = {s.question_id for s in samples if s.stage == "rationalized"}
    assert rationalized == {q.id for q in questions} - solved_first
    assert all(s.hinted for s in samples if s.stage == "rationalized")
    assert not any(s.hinted for s in samples if s.stage == "self")
    assert len(backend.calls) == 2 and len(backend.calls[1][0]) == len(rationalized)
    # Every rationalized sample trains on the hint-free prompt.
    for sample in samples:
        assert "The correct answer is" not in sample.train_prompt[-1].content
    assert all(s.reward == 1.0 for s in samples if s.stage == "rationalized")


def test_pps_hints_every_prompt(questions):
    samples = get_sampler("pps").run(questions, proposal(ScriptedBackend(), "pps"), SamplerOptions(num_samples=3))
    assert len(samples) == 3 * len(questions)
    for sample in samples:
        assert sample.stage == "hinted" and sample.hinted
        assert f"The correct answer is {sample.gold}." in sample.prompt[-1].content
        assert sample.hint and sample.hint in sample.prompt[-1].content
        assert "The correct answer is" not in sample.train_prompt[-1].content
        assert sample.reward == 1.0


def test_rejection_sampling_respects_the_budget(questions):
    backend = ScriptedBackend()
    samples = get_sampler("rs").run(questions, proposal(backend, "rs"), SamplerOptions(num_samples=2, budget=5))
    per_question = {q.id: [s for s in samples if s.question_id == q.id] for q in questions}
    for q in questions:
        drawn = per_question[q.id]
        # Solved in the first round: 2 draws; never solved: 2 + 2 + 1 = the budget of 5.
        assert len(drawn) == (2 if q.answer == "A" else 5)
        assert [s.sample_index for s in drawn] == list(range(len(drawn)))
        assert not any(s.hinted for s in drawn)
    assert [n for _, n in backend.calls] == [2, 2, 1]


def test_unknown_sampler_names_the_choices():
    with pytest.raises(FemError, match="did you mean 'star'"):
        get_sampler("stra")


def _sample(question: Question, text: str, hinted: bool, stage: str = "hinted"):
    template = PromptTemplate()
    from fem_cli.prompts import build_messages
    from fem_cli.answers import reward

    answer, score = reward(text, question.labels, question.choices, question.answer)
    from fem_cli.records import Sample

    return Sample(
        question_id=question.id, sampler="pps" if hinted else "rs", stage=stage, hinted=hinted, sample_index=0,
        prompt=build_messages(question, template, hint=hinted), train_prompt=build_messages(question, template),
        hint=hint_text(question, template) if hinted else None, text=text, num_tokens=10, finish_reason="stop",
        labels=question.labels, choices=question.choices, gold=question.answer,
        extracted=answer.label, extraction=answer.extraction, reward=score, model="m",
        generation=GenerationSettings(backend="hf", temperature=0.7, top_p=1.0, max_new_tokens=32, seed=0), seed=1,
    )


def test_filter_recomputes_rewards_drops_leaks_duplicates_and_caps(questions):
    q = questions[1]  # gold B
    good = "Two plus five is seven, and seven plus one is eight, so B.\nAnswer: B"
    samples = [
        _sample(q, good, hinted=True),
        _sample(q, good.replace("  ", " "), hinted=True),  # exact duplicate
        _sample(q, "Seven plus one makes eight, as the hint says, which matches the second option.\nAnswer: B", hinted=True),
        _sample(q, "Answer: B", hinted=True),  # too short to teach reasoning
        _sample(q, "The numbers add up to something close to the first option here.\nAnswer: A", hinted=True),
        _sample(q, "We add them carefully and compare with each of the four options.\nAnswer: B", hinted=True),
        _sample(q, "Counting up from seven by one step lands on eight, the second choice.\nAnswer: B", hinted=True),
    ]
    # A stale reward in an old file must not survive: the filter recomputes it.
    samples[4] = samples[4].model_copy(update={"reward": 1.0})
    kept, stats = select(samples, FilterConfig(samples=["x"], max_per_question=2))
    summary = stats.as_dict()
    assert [k.completion for k in kept] == [good, samples[5].text]
    assert summary == {**summary, "samples": 7, "correct": 6, "kept": 2, "leaks_dropped": 1,
                       "too_short_dropped": 1, "duplicates_removed": 1, "over_cap_dropped": 1}
    for example in kept:
        assert all("The correct answer is" not in m.content for m in example.prompt)


def test_an_answer_given_by_content_is_rewarded_and_recorded_alike_in_sampler_and_filter(questions):
    q = questions[1]
    gold_text = q.choices[q.labels.index("B")]
    content = f"Seven plus one is one more than seven. So the total is {gold_text}."
    sample = _sample(q, content, hinted=False, stage="self")
    assert (sample.extracted, sample.extraction, sample.reward) == ("B", "content", 1.0)
    old_file_line = sample.model_dump(exclude={"extraction"})  # written before the field existed
    assert Sample.model_validate(old_file_line).extraction is None
    kept, stats = select([sample], FilterConfig(samples=["x"]))
    assert [k.completion for k in kept] == [content] and stats.as_dict()["correct"] == 1


def test_filter_can_keep_leaks_when_asked(questions):
    q = questions[1]
    leak = _sample(q, "Seven plus one makes eight, as the hint says, which matches the second option.\nAnswer: B", hinted=True)
    kept, _ = select([leak], FilterConfig(samples=["x"], drop_leaks=False))
    assert len(kept) == 1
