"""Rationales whose working reaches their answer, a label-balanced training file and collapsed
evaluations: `content_answer` / `consistency` by hand and as a property, the consistent share of
the E-step summary, `fem filter --require-consistent` and `--balance-labels` end to end on
hand-made samples, and the collapse mark of `fem report`."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cli_helpers import fem
from fem_cli.answers import consistency, content_answer
from fem_cli.backends.base import Completion, SamplingSettings
from fem_cli.evaluation.metrics import Collapse, label_collapse
from fem_cli.filtering import FilterConfig, balance, label_shares, select
from fem_cli.jsonl import read_jsonl
from fem_cli.loop.config import LoopConfig, stage_config
from fem_cli.prompts import PromptTemplate, build_messages, hint_text
from fem_cli.provenance import as_jsonable
from fem_cli.records import EvalRecord, GenerationSettings, Question, Sample, TrainExample
from fem_cli.samplers import SamplerOptions, get_sampler
from fem_cli.samplers.base import Proposal

LABELS = ["A", "B", "C", "D"]
GENERATION = GenerationSettings(backend="hf", temperature=0.7, top_p=1.0, max_new_tokens=64, seed=0)


# --- reading the working ---------------------------------------------------------------------------

@pytest.mark.parametrize(
    "text, choices, reached, consistent",
    [
        # The example: C is 159, the working ends on 159.
        ("31 + 22 = 53. 53 x 3 = 159.\nAnswer: C", ["158", "160", "159", "53"], "C", True),
        # The same working where C is 160 and B is 159: it reaches B, the answer line says C.
        ("31 + 22 = 53. 53 x 3 = 159.\nAnswer: C", ["158", "159", "160", "53"], "B", False),
        # The last number is no choice's value: the working reaches none (null, not false).
        ("31 + 22 = 53. 53 x 3 = 161.\nAnswer: C", ["158", "159", "160", "53"], None, None),
        # No number at all.
        ("Adding and then tripling gives the count.\nAnswer: C", ["158", "159", "160", "53"], None, None),
        # Label mentions and a restated choice list are not the working's result.
        ("53 x 3 = 159, which is choice C (C).\nA. 158\nB. 160\nC. 159\nD. 53\nAnswer: C", ["158", "160", "159", "53"], "C", True),
        # A stated answer on the working's own line: the working is what comes before it.
        ("53 x 3 = 159, so the answer is C.", ["158", "160", "159", "53"], "C", True),
        # A label last line.
        ("53 x 3 = 159\nC", ["158", "160", "159", "53"], "C", True),
        # No answer line: the content gave the answer, and the working is all of the text.
        ("So Ava has 159 apples.", ["158", "160", "159", "53"], "C", True),
        # The working reaches a choice, the answer line gives no usable label.
        ("53 x 3 = 159.\nAnswer: A or C", ["158", "160", "159", "53"], "C", False),
        # Numbers written with separators, decimals and signs; a minus after an operand subtracts.
        ("1,200 + 50 = 1,250\nAnswer: B", ["1200", "1,250", "50", "2.5"], "B", True),
        ("It drops 8, so 5 - 8 = -3\nAnswer: A", ["-3", "3", "8", "5"], "A", True),
        ("8 - 3\nAnswer: B", ["-3", "3", "8", "5"], "B", True),
        # Markdown emphasis does not hide the answer line.
        ("53 x 3 = **159**.\n**Answer:** C", ["158", "160", "159", "53"], "C", True),
    ],
)
def test_numeric_choices_are_reached_by_the_last_number_of_the_working(text, choices, reached, consistent) -> None:
    assert content_answer(text, LABELS, choices) == reached
    assert consistency(text, LABELS, choices) is consistent


def test_numbered_labels_are_not_read_as_the_working_result() -> None:
    labels, choices = ["1", "2", "3", "4"], ["158", "160", "159", "53"]
    assert content_answer("53 x 3 = 159, which is option 3.\nAnswer: 3", labels, choices) == "3"
    assert content_answer("53 x 3 = 159 (3)\n3. 159\nAnswer: 3", labels, choices) == "3"
    assert consistency("53 x 3 = 160, which is option 3.\nAnswer: 3", labels, choices) is False


ANIMALS = ["shark", "dolphin", "trout", "octopus"]


@pytest.mark.parametrize(
    "text, reached, consistent",
    [
        ("Sharks and trout are fish. A dolphin breathes air, so it is a mammal.\nAnswer: B", "B", True),
        # The last sentence naming one choice names the shark: another choice than the answer line.
        ("A dolphin breathes air. The shark is the mammal here.\nAnswer: B", "A", False),
        # A negated mention and a sentence naming two choices are passed over.
        ("The dolphin feeds its young milk. It is not a shark.\nThe trout and the octopus live in water.\nAnswer: B", "B", True),
        # No sentence names exactly one choice.
        ("Some animals swim and some fly.\nAnswer: B", None, None),
        # The choices listed again are not the working.
        ("The dolphin is a mammal.\nA. shark\nB. dolphin\nC. trout\nD. octopus\nAnswer: B", "B", True),
    ],
)
def test_text_choices_are_reached_by_the_last_sentence_naming_one(text, reached, consistent) -> None:
    assert content_answer(text, LABELS, ANIMALS) == reached
    assert consistency(text, LABELS, ANIMALS) is consistent


@settings(max_examples=80, deadline=None)
@given(
    values=st.lists(st.integers(0, 999), min_size=4, max_size=4, unique=True),
    reached=st.integers(0, 3), answered=st.integers(0, 3), a=st.integers(0, 99),
    mention=st.sampled_from(["", " which is choice {label}", " ({label})"]),
)
def test_the_working_decides_whatever_label_the_answer_line_gives(values, reached, answered, a, mention) -> None:
    choices = [str(v) for v in values]
    working = f"First {a} + {values[reached] - a} = {values[reached]}.{mention.format(label=LABELS[answered])}"
    text = f"{working}\nAnswer: {LABELS[answered]}"
    assert content_answer(text, LABELS, choices) == LABELS[reached]
    assert consistency(text, LABELS, choices) is (reached == answered)


# --- the E-step summary ----------------------------------------------------------------------------

class WorksOutTwelve:
    """Writes the same working (ending on 12) for every prompt and the hinted label after it."""

    name = "scripted"
    capabilities = frozenset()

    def generate(self, requests, settings, on_progress=None):
        labels = [re.search(r"The correct answer is ([A-D])\.", r.messages[-1].content).group(1) for r in requests]
        text = "Five apples and seven more make 5 + 7 = 12 apples.\nAnswer: {}"
        return [[Completion(text=text.format(label), num_tokens=16, finish_reason="stop")] * settings.n for label in labels]


def test_the_sample_summary_has_the_consistent_share_of_the_accepted() -> None:
    questions = [
        Question(id="reaches-gold", question="?", choices=["10", "11", "12", "13"], labels=LABELS, answer="C"),
        Question(id="reaches-other", question="?", choices=["10", "11", "12", "13"], labels=LABELS, answer="A"),
        Question(id="reaches-none", question="?", choices=["20", "21", "22", "23"], labels=LABELS, answer="B"),
    ]
    proposal = Proposal(backend=WorksOutTwelve(), settings=SamplingSettings(), template=PromptTemplate(), sampler="pps",
                        model="m", seed=0, generation=GENERATION)
    samples = get_sampler("pps").run(questions, proposal, SamplerOptions(num_samples=2))
    assert [s.consistent for s in samples] == [True, True, False, False, None, None]
    summary = proposal.stats["hinted"].summary()
    assert (summary["accepted"], summary["consistent"], summary["inconsistent"]) == (6, 2, 2)
    assert summary["consistent_share"] == pytest.approx(2 / 6)


# --- fem filter ------------------------------------------------------------------------------------

def hand_sample(question: Question, text: str, index: int = 0, gold: str | None = None) -> Sample:
    """A hinted PPS draw of `question` (shown with gold `gold`, default its own), scored."""
    shown = question.model_copy(update={"answer": gold or question.answer})
    template = PromptTemplate()
    return Sample(
        question_id=question.id, sampler="pps", stage="hinted", hinted=True, sample_index=index,
        prompt=build_messages(shown, template, hint=True), train_prompt=build_messages(shown, template),
        hint=hint_text(shown, template), text=text, num_tokens=20, finish_reason="stop", labels=shown.labels,
        choices=shown.choices, gold=shown.answer, extracted=None, reward=1.0, model="m", generation=GENERATION, seed=index,
    )


def write_samples(path: Path, samples: list[Sample]) -> Path:
    path.write_text("".join(sample.model_dump_json() + "\n" for sample in samples))
    return path


ARITH = Question(id="q", question="Ava has 31 apples, buys 22 more, then the count triples. How many?",
                 choices=["160", "159", "161", "53"], labels=LABELS, answer="B")
REACHES_ITS_ANSWER = "Ava starts with 31 apples. 31 + 22 = 53. Then it triples: 53 x 3 = 159.\nAnswer: B"
REACHES_ANOTHER = "Ava starts with 31 apples. 31 + 22 = 53. Then it triples: 53 x 3 = 160.\nAnswer: B"
REACHES_NONE = "Ava starts with 31 apples and buys more, and then the count triples at the end.\nAnswer: B"


def test_filter_require_consistent_keeps_only_working_that_reaches_its_answer(tmp_path: Path) -> None:
    samples = write_samples(tmp_path / "samples.jsonl", [
        hand_sample(ARITH, REACHES_ITS_ANSWER, 0), hand_sample(ARITH, REACHES_ANOTHER, 1), hand_sample(ARITH, REACHES_NONE, 2),
    ])
    train = tmp_path / "train.jsonl"
    result = fem("filter", samples, "--out", train, "--require-consistent")
    assert result.exit_code == 0, result.output
    assert [e.completion for e in read_jsonl(train, TrainExample)] == [REACHES_ITS_ANSWER]
    stats = json.loads(Path(f"{train}.stats.json").read_text())
    assert (stats["correct"], stats["consistent"], stats["inconsistent_dropped"], stats["unread_dropped"], stats["kept"]) == (3, 1, 1, 1, 1)
    assert stats["per_stage"]["pps/hinted"]["consistent_share"] == pytest.approx(1 / 3)
    assert stats["config"]["require_consistent"] is True
    # Without the option all three are kept, and the consistent share is still counted.
    result = fem("filter", samples, "--out", train)
    assert result.exit_code == 0, result.output
    assert len(read_jsonl(train, TrainExample)) == 3
    assert json.loads(Path(f"{train}.stats.json").read_text())["consistent"] == 1


def test_filter_require_consistent_that_leaves_nothing_fails_in_one_line(tmp_path: Path) -> None:
    samples = write_samples(tmp_path / "samples.jsonl", [hand_sample(ARITH, REACHES_ANOTHER)])
    result = fem("filter", samples, "--out", tmp_path / "train.jsonl", "--require-consistent")
    assert result.exit_code == 2 and result.output.strip().splitlines()[-1].startswith("error: no sample survived the filter")
    assert not (tmp_path / "train.jsonl").exists()


def test_loop_recipes_pass_the_new_filter_options(tmp_path: Path) -> None:
    cfg = LoopConfig(runs_dir=str(tmp_path), filter={"require_consistent": True, "balance_labels": True})
    filter_cfg = stage_config(cfg, "filter", 1, cfg.run_dir)
    assert filter_cfg.require_consistent and filter_cfg.balance_labels


def question(index: int, gold: str) -> Question:
    value = 10 * (index + 1)
    return Question(id=f"q{index}", question=f"What is {value}?", choices=[str(value + k) for k in range(4)],
                    labels=LABELS, answer=gold)


def solved(q: Question, index: int) -> Sample:
    """A correct, consistent draw of `q` (different words per draw, so none is a duplicate)."""
    value = q.choices[LABELS.index(q.answer)]
    return hand_sample(q, f"Draw {index}: counting up step by step the total comes to {value}.\nAnswer: {q.answer}", index)


def failed(q: Question, index: int) -> Sample:
    return hand_sample(q, "I am not sure what the total is here at all.\nAnswer: none", index).model_copy(update={"reward": 0.0})


def test_balance_labels_caps_each_label_at_its_share_of_the_questions(tmp_path: Path) -> None:
    # Eight questions, two per gold label (each label 25 % of the questions), two draws each.
    # Solved: both draws of both C questions, both of one A question, one of one B question.
    questions = [question(i, gold) for i, gold in enumerate("AABBCCDD")]
    draws = {0: (True, True), 2: (True, False), 4: (True, True), 5: (True, True)}
    samples = [(solved if draws.get(i, (False, False))[d] else failed)(q, d) for i, q in enumerate(questions) for d in range(2)]
    kept, stats = select(samples, FilterConfig(samples=["x"], balance_labels=True))
    # 7 examples kept before balancing: a cap of ceil(25 % x 7) = 2 per label, so C drops 2 of
    # its 4, last first, from questions that keep another example: q5's second draw, then q4's.
    assert [(e.question_id, e.completion.split(":")[0]) for e in kept] == [
        ("q0", "Draw 0"), ("q0", "Draw 1"), ("q2", "Draw 0"), ("q4", "Draw 0"), ("q5", "Draw 0")]
    summary = stats.as_dict()
    assert summary["unbalanced_dropped"] == 2 and summary["kept"] == 5 and summary["questions_with_kept"] == 4
    assert summary["balance"]["caps"] == {"A": 2, "B": 2, "C": 2, "D": 2}
    assert summary["balance"]["dropped"] == {"A": 0, "B": 0, "C": 2, "D": 0}
    assert summary["kept_per_label"] == {"A": 2, "B": 1, "C": 2}
    assert summary["per_stage"]["pps/hinted"]["unbalanced"] == 2

    # The same through the CLI, which reports what was dropped.
    train = tmp_path / "train.jsonl"
    result = fem("filter", write_samples(tmp_path / "samples.jsonl", samples), "--out", train, "--balance-labels")
    assert result.exit_code == 0, result.output
    assert len(read_jsonl(train, TrainExample)) == 5
    assert "--balance-labels: caps A 2 B 2 C 2 D 2; dropped A 0 B 0 C 2 D 0 (2 in all)" in " ".join(result.output.split())
    assert json.loads(Path(f"{train}.stats.json").read_text())["unbalanced_dropped"] == 2


def test_label_shares_follow_the_golds_as_shown() -> None:
    # One question shown with gold A and with gold B (permuted choices), one with gold C twice.
    first, second = question(0, "A"), question(1, "C")
    samples = [hand_sample(first, "x", 0, gold="A"), hand_sample(first, "x", 1, gold="B"),
               hand_sample(second, "x", 0), hand_sample(second, "x", 1)]
    shares = label_shares(samples)
    assert {label: float(share) for label, share in shares.items()} == {"A": 0.25, "B": 0.25, "C": 0.5}
    # A label may keep its share of the examples, rounded up; when every question keeps one
    # example, the last in file order go.
    kept, dropped, info = balance([hand_sample(question(i, "C"), "x") for i in range(3)], shares)
    assert [s.question_id for s in kept] == ["q0", "q1"] and [s.question_id for s in dropped] == ["q2"]
    assert info["caps"] == {"A": 1, "B": 1, "C": 2}


# --- collapse in fem report ------------------------------------------------------------------------

def counts(unparsed: int = 0, **values: int) -> dict[str, int]:
    """Label counts as `metrics.label_counts` writes them."""
    return {**values, "unparsed": unparsed}


def test_label_collapse_is_more_than_twice_the_gold_share() -> None:
    golds = counts(A=56, B=50, C=44, D=50)
    assert label_collapse(counts(A=1, B=1, C=197, D=0, unparsed=1), golds) == Collapse("C", 197, 200, 0.22)
    assert label_collapse(counts(A=50, B=56, C=44, D=50), golds) is None
    assert label_collapse(counts(A=40, B=40, C=88, D=32), golds) is None  # exactly twice: not more
    assert label_collapse(counts(A=40, B=40, C=89, D=31), golds) == Collapse("C", 89, 200, 0.22)
    # Two balanced labels cannot double: more than halfway from 50 % to all answers collapses.
    assert label_collapse(counts(A=75, B=25), counts(A=50, B=50)) is None
    assert label_collapse(counts(A=76, B=24), counts(A=50, B=50)) == Collapse("A", 76, 100, 0.5)
    assert label_collapse(counts(A=0, B=0, unparsed=100), counts(A=50, B=50)) is None


def make_evaluated_run(root: Path, name: str, predictions: dict[str, int], gold: dict[str, int]) -> Path:
    """A run folder holding only its base evaluation, written by hand."""
    cfg = LoopConfig(name=name, model="m", task="arith", iterations=1)
    folder = root / name
    eval_dir = folder / "iter-0" / "eval"
    eval_dir.mkdir(parents=True)
    metrics = {"accuracy": {"value": 0.22, "ci_low": 0.16, "ci_high": 0.28, "n": 200}, "constant_baseline": 0.28,
               "predictions": predictions, "gold": gold}
    (eval_dir / "results.json").write_text(json.dumps({"tasks": {"arith": {"file": "arith.jsonl", "metrics": metrics}}}))
    answers = [label for label, n in predictions.items() for _ in range(n)]
    golds = [label for label, n in gold.items() for _ in range(n)]
    records = [
        EvalRecord(task="arith", question_id=f"q{i}", protocol="generative", prompt="p", outputs=["o"],
                   extracted=[None if answer == "unparsed" else answer], prediction=None if answer == "unparsed" else answer,
                   gold=g, correct=answer == g)
        for i, (answer, g) in enumerate(zip(answers, golds))
    ]
    (eval_dir / "arith.jsonl").write_text("".join(r.model_dump_json() + "\n" for r in records))
    record = {"name": name, "status": "done", "config": as_jsonable(cfg), "stages": {"0/evaluate": {"status": "done", "seconds": 1.0}}}
    (folder / "run.json").write_text(json.dumps(record))
    return folder


def test_report_marks_a_collapsed_evaluation_and_not_a_balanced_one(tmp_path: Path) -> None:
    golds = counts(A=56, B=50, C=44, D=50)
    collapsed = make_evaluated_run(tmp_path, "collapsed", counts(A=1, B=1, C=197, D=0, unparsed=1), golds)
    balanced = make_evaluated_run(tmp_path, "balanced", counts(A=48, B=52, C=46, D=50, unparsed=4), golds)
    result = fem("report", collapsed, "--out", tmp_path / "collapsed-report")
    assert result.exit_code == 0, result.output
    report = (tmp_path / "collapsed-report" / "report.md").read_text()
    assert "| arith answers |" in report and "| collapse: C 197 of 200, golds 22 % |" in report
    result = fem("report", balanced, "--out", tmp_path / "balanced-report")
    assert result.exit_code == 0, result.output
    report = (tmp_path / "balanced-report" / "report.md").read_text()
    assert "collapse" not in report and "answers" not in report
