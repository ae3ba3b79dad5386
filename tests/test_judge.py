"""Judge tasks and calibration: the two hub converters, the real files, the judge prompt, swap
augmentation (circular evaluation with K = 2), ECE / Brier by hand, the reliability PNG, label-probability
confidence on the tiny model, and `fem sample` / `fem evaluate --swap-augment` end to end."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fem_cli.cli.main import app
from fem_cli.errors import FemError
from fem_cli.evaluation import RESULTS_FILE
from fem_cli.backends.label_probs import LabelProbabilityScorer, answer_context
from fem_cli.evaluation.metrics import (
    brier_score,
    calibration_summary,
    expected_calibration_error,
    multiclass_brier_score,
    reliability_bins,
)
from fem_cli.evaluation.reliability import write_reliability_diagram
from fem_cli.jsonl import read_jsonl
from fem_cli.models import load_model, load_tokenizer
from fem_cli.prompts import PromptTemplate, build_messages, hint_text, render
from fem_cli.records import EvalRecord, Question, Sample
from fem_cli.report.collect import IterationFigures
from fem_cli.report.tables import markdown_table
from fem_cli.tasks import get_task, load_questions, task_prompt_style
from fem_cli.tasks.converters import CONVERTERS, convert_rows, detect_schema, judge_split
from fem_cli.tasks.swap import SWAP_SUFFIX, swap_augment, swapped

runner = CliRunner()
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def pair(id: str = "p", answer: str = "A", context: str = "Instruction:\nSay hi.\n\nWhich response is better?") -> Question:
    return Question(id=id, question=context, choices=["Hello there!", "Go away."], labels=["A", "B"], answer=answer)


# --- converters on hub-schema rows ---------------------------------------------------------------


def tldr_row(post_id: str, split: str, choice: int, batch: str = "batch13", texts=(" first summary", " second one")) -> dict:
    return {
        "info": {"id": post_id, "post": "My cat ignores me.\n\nWhat do I do?", "title": "Cat problem",
                 "subreddit": "cats", "article": None, "site": None},
        "summaries": [{"text": text, "policy": "ref", "note": None} for text in texts],
        "choice": choice, "worker": "w1", "batch": batch, "split": split, "extra": {"confidence": 7},
    }


def test_summarize_from_feedback_rows_become_normalized_questions() -> None:
    rows = [tldr_row("t3_a", "valid1", 1), tldr_row("t3_b", "valid2", 0), tldr_row("t3_c", "valid1", 0),
            tldr_row("t3_d", "valid1", 0, batch="batch18")]
    schema = detect_schema(rows[0].keys(), "hub")
    assert schema.name == "summarize_from_feedback"
    validation = convert_rows(schema, rows, "validation", str)
    # ids number rows within their batch, over every row of it (valid1 and valid2 alike).
    assert [q.id for q in validation] == ["batch13-valid1-t3_a-0000", "batch13-valid1-t3_c-0002", "batch18-valid1-t3_d-0000"]
    first = validation[0]
    assert first.question == "SUBREDDIT: r/cats\nTITLE: Cat problem\nPOST: My cat ignores me.\n\nWhat do I do?\n\nWhich summary is better?"
    assert first.choices == ["first summary", "second one"]  # the release's leading space stripped
    assert (first.labels, first.answer, first.subject) == (["A", "B"], "B", "cats")
    assert [q.id for q in convert_rows(schema, rows, "train", str)] == ["batch13-valid2-t3_b-0001"]
    assert len(convert_rows(schema, rows, "all", str)) == 4  # another split name keeps every row
    bad = tldr_row("t3_e", "valid1", 2)
    with pytest.raises(FemError, match=r"row 2: not a valid summarize_from_feedback row: choice 2 is not 0 or 1"):
        convert_rows(schema, [rows[0], bad], "validation", lambda i: f"row {i + 1}")


def test_summarize_from_feedback_reproduces_the_shared_file(shared_data: Path) -> None:
    """A hub row rebuilt from a normalized line converts back to exactly that line."""
    target = Question.model_validate_json((shared_data / "tldr_comparisons" / "validation.jsonl").read_text().splitlines()[0])
    batch, original, post_id, index = target.id.split("-")
    head, _, rest = target.question.partition("\nPOST: ")
    post = rest.removesuffix("\n\nWhich summary is better?")
    subreddit, title = head.split("\n")
    row = {
        "info": {"id": post_id, "post": post, "title": title.removeprefix("TITLE: "),
                 "subreddit": subreddit.removeprefix("SUBREDDIT: r/"), "article": None, "site": None},
        "summaries": [{"text": " " + text, "policy": "x", "note": None} for text in target.choices],
        "choice": "AB".index(target.answer), "worker": "w", "batch": batch, "split": original, "extra": {},
    }
    filler = [{**row, "split": "valid2"}] * int(index)  # the rows before it in its batch
    assert convert_rows(CONVERTERS["summarize_from_feedback"], [*filler, row], "validation", str) == [target]


def mt_bench_row(question_id: int, winner: str, turn: int = 1, instruction: str = "Write a haiku about rain.") -> dict:
    def conversation(answer: str) -> list[dict]:
        return [{"role": "user", "content": instruction}, {"role": "assistant", "content": answer},
                {"role": "user", "content": "Now make it rhyme."}, {"role": "assistant", "content": answer + " (rhymed)"}]

    return {"question_id": question_id, "model_a": "gpt-4", "model_b": "alpaca-13b", "winner": winner, "judge": "author_0",
            "conversation_a": conversation("Rain taps the window"), "conversation_b": conversation("Rain is wet."), "turn": turn}


def test_mt_bench_human_judgments_keeps_first_turn_winners() -> None:
    rows = [mt_bench_row(81, "model_a"), mt_bench_row(81, "tie"), mt_bench_row(81, "model_b", turn=2),
            mt_bench_row(82, "tie (bothbad)"), mt_bench_row(82, "model_b")]
    schema = detect_schema(rows[0].keys(), "hub")
    assert schema.name == "mt_bench_human_judgments"
    questions = convert_rows(schema, rows, "human", str)
    assert [q.id for q in questions] == ["mtbench_human-0000", "mtbench_human-0004"]  # the hub row index
    first = questions[0]
    assert first.question == "Instruction:\nWrite a haiku about rain.\n\nWhich response is better?"
    assert first.choices == ["Rain taps the window", "Rain is wet."]  # first assistant messages
    assert (first.answer, questions[1].answer, first.subject) == ("A", "B", "mtbench_human")
    # train / validation: judge_pairs' prompt-hash rule, so a prompt never crosses splits.
    side = judge_split("mtbench_human", "Write a haiku about rain.")
    other = "validation" if side == "train" else "train"
    assert len(convert_rows(schema, rows, side, str)) == 2 and convert_rows(schema, rows, other, str) == []
    with pytest.raises(FemError, match=r"row 2: not a valid mt_bench_human_judgments row: winner 'model_c'"):
        convert_rows(schema, [rows[0], mt_bench_row(83, "model_c")], "human", lambda i: f"row {i + 1}")


def test_judge_split_rule_matches_the_shared_files(shared_data: Path) -> None:
    for split in ("train", "validation"):
        for question in read_jsonl(shared_data / "judge_pairs" / f"{split}.jsonl", Question):
            if question.subject == "mtbench_human":
                instruction = question.question.removeprefix("Instruction:\n").removesuffix("\n\nWhich response is better?")
                assert judge_split("mtbench_human", instruction) == split, question.id


def test_hub_schema_file_loads_as_a_path_source(tmp_path: Path) -> None:
    path = tmp_path / "votes.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in [mt_bench_row(1, "model_b"), mt_bench_row(2, "tie")]))
    loaded = load_questions(str(path), "human")
    assert "mt_bench_human_judgments schema" in loaded.source and [q.answer for q in loaded.questions] == ["B"]


@pytest.mark.parametrize(("task", "counts"), [("tldr_comparisons", (1386, 385)), ("judge_pairs", (1174, 287))])
def test_real_files_load_with_their_counts(shared_data: Path, task: str, counts: tuple[int, int]) -> None:
    spec = get_task(task)
    assert (spec.counts["train"], spec.counts["validation"]) == counts and spec.prompt_style == "judge"
    for split, count in zip(("train", "validation"), counts):
        questions = load_questions(task, split, data_dir=shared_data).questions
        assert len(questions) == count
        assert all(q.labels == ["A", "B"] and q.answer in ("A", "B") and len(q.choices) == 2 for q in questions)
        assert len({q.id for q in questions}) == count


# --- the judge prompt ----------------------------------------------------------------------------


def test_judge_prompt_delimits_both_responses_and_asks_for_the_verdict() -> None:
    question = pair(answer="B")
    messages = build_messages(question, PromptTemplate(), style="judge")
    user = messages[-1].content
    assert user.startswith("Instruction:\nSay hi.\n\nWhich response is better?\n\n[Response A]\nHello there!\n[End of response A]\n")
    assert "[Response B]\nGo away.\n[End of response B]" in user
    assert "Which is better, A or B?" in user and '"Answer: <label>", where <label> is one of A, B.' in user
    assert "The better response is" not in user
    # The worked example is a made-up judgment, not a multiple-choice question.
    assert "[Response A]" in messages[0].content and messages[1].content.endswith("Answer: B")
    hinted = build_messages(question, PromptTemplate(), hint=True, style="judge")[-1].content
    assert hint_text(question, PromptTemplate(), "judge") in hinted and "The better response is B." in hinted
    # A recipe's prompt fields override the style's defaults; the others stay.
    custom = build_messages(question, PromptTemplate(instruction="Pick {labels_or}.", worked_example=False), style="judge")
    assert len(custom) == 1 and custom[0].content.endswith("[End of response B]\n\nPick A or B.")


def test_tasks_choose_their_prompt_style() -> None:
    assert task_prompt_style("judge_pairs") == "judge" and task_prompt_style("tldr_comparisons") == "judge"
    assert task_prompt_style("arc_easy") == "choice" and task_prompt_style("pairs.jsonl") == "choice"
    assert task_prompt_style("pairs.jsonl", "judge") == "judge" and task_prompt_style("judge_pairs", "choice") == "choice"


# --- swap augmentation ---------------------------------------------------


def test_swap_augmentation_keeps_pairs_and_labels_consistent() -> None:
    questions = [pair("p1", "A"), pair("p2", "B")]
    augmented = swap_augment(questions)
    assert [q.id for q in augmented] == ["p1", "p1~swap", "p2", "p2~swap"]
    for original, copy in zip(augmented[::2], augmented[1::2]):
        assert copy.id == original.id + SWAP_SUFFIX and copy.labels == original.labels == ["A", "B"]
        assert copy.choices == original.choices[::-1] and copy.question == original.question
        # The gold answer follows its response.
        assert copy.choices[copy.labels.index(copy.answer)] == original.choices[original.labels.index(original.answer)]
        assert copy.answer != original.answer
    assert swapped(swapped(questions[0])).choices == questions[0].choices
    four = Question(id="m", question="?", choices=["a", "b", "c", "d"], labels=["A", "B", "C", "D"], answer="C")
    with pytest.raises(FemError, match="question m: --swap-augment needs two-choice questions, this one has 4"):
        swap_augment([four])


# --- calibration by hand -------------------------------------------------------------------------


def test_ece_and_brier_by_hand() -> None:
    confidences = [0.95, 0.9, 0.6, 0.55, 0.2, 0.0]
    correct = [True, False, True, False, False, False]
    bins = reliability_bins(confidences, correct)
    # 0.95 -> (14/15, 1]; 0.9 -> (13/15, 14/15]; 0.6 and 0.55 -> (8/15, 9/15]; 0.2 -> (2/15, 3/15];
    # 0 -> the first bin.
    assert [i for i, n in enumerate(bins["counts"]) if n] == [0, 2, 8, 13, 14] and sum(bins["counts"]) == 6
    assert bins["accuracy"][8] == 0.5 and bins["confidence"][8] == pytest.approx(0.575) and bins["accuracy"][5] is None
    # ECE = (|1 - .95| + |0 - .9| + 2 |.5 - .575| + |0 - .2| + |0 - 0|) / 6 = 1.3 / 6
    assert expected_calibration_error(confidences, correct) == pytest.approx(1.3 / 6)
    # Brier = (.05^2 + .9^2 + .4^2 + .55^2 + .2^2 + 0) / 6 = 1.315 / 6
    assert brier_score(confidences, correct) == pytest.approx(1.315 / 6)
    # One bin: accuracy 3/4 against confidence 0.7.
    assert expected_calibration_error([0.7] * 4, [True, True, True, False]) == pytest.approx(0.05)
    assert expected_calibration_error([1.0, 1.0], [True, True]) == 0.0
    # Multi-class: ([.8, .2], gold 0) -> .08; ([.3, .7], gold 0) -> .98; no answer -> 1.
    assert multiclass_brier_score([[0.8, 0.2], [0.3, 0.7], None], [0, 0, 1]) == pytest.approx(2.06 / 3)
    summary = calibration_summary(confidences, correct, "label_probability", [None] * 6, [0] * 6)
    assert summary["confidence"] == "label_probability" and summary["brier_multiclass"] == 1.0
    assert summary["ece"] == pytest.approx(1.3 / 6) and summary["bins"]["edges"][:2] == [0.0, pytest.approx(1 / 15)]


def test_reliability_diagram_is_a_png(tmp_path: Path) -> None:
    calibration = calibration_summary([0.95, 0.9, 0.6, 0.55, 0.2, 0.0], [True, False, True, False, False, False], "vote_share")
    path = write_reliability_diagram(tmp_path / "out" / "t.reliability.png", "t", calibration)
    assert path.read_bytes()[:8] == PNG_MAGIC and [p.name for p in path.parent.iterdir()] == ["t.reliability.png"]


# --- label probabilities -------------------------------------------------------------------------


def test_answer_context_finds_the_label_position() -> None:
    assert answer_context("so B.\nAnswer: B") == ("so B.\nAnswer:", " ")
    assert answer_context("Answer:B") == ("Answer:", "")
    assert answer_context("**Answer:** (B)") == ("**Answer:** (", "")
    assert answer_context("answer: A, no wait\nAnswer: B") == ("answer: A, no wait\nAnswer:", " ")
    assert answer_context("no marker here") == ("no marker here\nAnswer:", " ")


def test_label_probabilities_are_a_distribution(tiny_model: Path) -> None:
    import torch

    torch.set_num_threads(1)
    tokenizer = load_tokenizer(str(tiny_model))
    model = load_model(str(tiny_model))
    scorer = LabelProbabilityScorer(model, tokenizer, batch_size=2)
    prompt = render(tokenizer, build_messages(pair(), PromptTemplate(), style="judge"))
    completions = ["first we compare.\nAnswer: B", "Answer:A", "nothing", "the sun is a star", "Answer: 1"]
    labels = [["A", "B"], ["A", "B"], ["A", "B"], ["1", "2"], ["10", "11", "12"]]
    results = scorer.score([(prompt, text, label) for text, label in zip(completions, labels)])
    for distribution, label in zip(results, labels):
        assert distribution is not None and len(distribution) == len(label)
        assert all(0 <= p <= 1 for p in distribution) and math.isclose(sum(distribution), 1, abs_tol=1e-5)
    # Batched (left-padded, the shared prefix encoded once) equals one at a time.
    single = LabelProbabilityScorer(model, tokenizer, batch_size=1).score([(prompt, completions[2], labels[2])])
    assert single[0] == pytest.approx(results[2], abs=1e-5)


# --- end to end ----------------------------------------------------------------------------------


@pytest.fixture
def pairs_file(tmp_path: Path) -> Path:
    path = tmp_path / "pairs.jsonl"
    questions = [pair(f"p{i}", "AB"[i % 2], f"Instruction:\nName a fruit number {i}.\n\nWhich response is better?") for i in range(4)]
    path.write_text("".join(q.model_dump_json() + "\n" for q in questions))
    return path


def test_evaluate_swap_augment_reports_calibration_and_consistency(tiny_model: Path, pairs_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "eval"
    result = runner.invoke(app, ["evaluate", "--model", str(tiny_model), "--task", str(pairs_file), "--backend", "hf",
                                 "--max-new-tokens", "12", "--swap-augment", "--prompt-style", "judge", "--threads", "1",
                                 "--out", str(out)], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert "ECE" in result.output and "content consistency" in result.output
    summary = json.loads((out / RESULTS_FILE).read_text())["tasks"]["pairs"]
    assert summary["questions"] == 8 and summary["reliability_diagram"] == "pairs.reliability.png"
    assert (out / "pairs.reliability.png").read_bytes()[:8] == PNG_MAGIC
    records = read_jsonl(out / "pairs.jsonl", EvalRecord)
    assert [r.question_id for r in records] == [i for n in range(4) for i in (f"p{n}", f"p{n}~swap")]
    assert all("[Response A]" in r.prompt for r in records)
    for record in records:
        assert 0 <= record.confidence <= 1 and record.vote_share in (0.0, 1.0)
        if record.prediction is None:
            assert record.confidence == 0 and record.label_probs is None and not record.correct
        else:
            assert math.isclose(sum(record.label_probs), 1, abs_tol=1e-5)
            assert record.confidence == record.label_probs["AB".index(record.prediction)]
    metrics = summary["metrics"]
    calibration = metrics["calibration"]
    assert calibration["confidence"] == "label_probability" and sum(calibration["bins"]["counts"]) == 8
    correct = [r.correct for r in records]
    assert calibration["ece"] == pytest.approx(expected_calibration_error([r.confidence for r in records], correct))
    assert calibration["brier"] == pytest.approx(brier_score([r.confidence for r in records], correct))
    # Swap augmentation is circular evaluation with K = 2: the same response chosen in both orders.
    assert metrics["rotations"] == 2 and summary["rotations"] == 2
    assert [r.choice_order for r in records] == [[0, 1], [1, 0]] * 4
    chosen = [None if r.prediction is None else r.choice_order["AB".index(r.prediction)] for r in records]
    both = [(a, b) for a, b in zip(chosen[::2], chosen[1::2]) if a is not None and b is not None]
    consistency = metrics["content_consistency"]
    assert consistency == {"value": sum(a == b for a, b in both) / len(both) if both else 0.0, "questions": 4,
                           "all_parsed": len(both), "consistent": sum(a == b for a, b in both)}
    assert metrics["circular_accuracy"]["value"] == sum(a.correct and b.correct for a, b in zip(records[::2], records[1::2])) / 4


def test_swap_augment_refuses_more_than_two_choices(tiny_model: Path, questions_file: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["evaluate", "--model", str(tiny_model), "--task", str(questions_file),
                                 "--swap-augment", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "--swap-augment needs two-choice questions" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_sample_swap_augment_trains_both_orders(tiny_model: Path, pairs_file: Path, tmp_path: Path) -> None:
    samples = tmp_path / "samples.jsonl"
    result = runner.invoke(app, ["sample", "--model", str(tiny_model), "--task", str(pairs_file), "--backend", "hf",
                                 "--sampler", "pps", "--num-samples", "1", "--max-new-tokens", "8", "--swap-augment",
                                 "--prompt-style", "judge", "--threads", "1", "--out", str(samples)])
    assert result.exit_code == 0, result.output
    records = read_jsonl(samples, Sample)
    assert [r.question_id for r in records] == [i for n in range(4) for i in (f"p{n}", f"p{n}~swap")]
    for original, copy in zip(records[::2], records[1::2]):
        assert copy.choices == original.choices[::-1] and copy.gold != original.gold
        assert "The better response is" in copy.prompt[-1].content and "[Response A]" in copy.train_prompt[-1].content
    summary = json.loads(Path(f"{samples}.summary.json").read_text())
    assert summary["swap_augment"] is True and summary["prompt_style"] == "judge"


def test_sharded_swap_augment_keeps_each_pair_in_one_shard(tiny_model: Path, pairs_file: Path, tmp_path: Path) -> None:
    samples = tmp_path / "shard1.jsonl"
    result = runner.invoke(app, ["sample", "--model", str(tiny_model), "--task", str(pairs_file), "--backend", "hf",
                                 "--sampler", "rs", "--num-samples", "1", "--budget", "1", "--max-new-tokens", "4",
                                 "--swap-augment", "--shard", "1/2", "--threads", "1", "--out", str(samples)])
    assert result.exit_code == 0, result.output
    assert [r.question_id for r in read_jsonl(samples, Sample)] == ["p1", "p1~swap", "p3", "p3~swap"]


def test_report_shows_calibration_error_per_iteration() -> None:
    accuracy = {"value": 0.5, "ci_low": 0.4, "ci_high": 0.6, "n": 100}
    iterations = [
        IterationFigures(0, {"judge_pairs": accuracy}, {"judge_pairs": {"calibration": {"ece": 0.1234}}}),
        IterationFigures(1, {"judge_pairs": accuracy}, {"judge_pairs": {"calibration": {"ece": 0.05}}}),
    ]
    table = markdown_table(iterations)
    assert table.splitlines()[0].startswith("| iteration | judge_pairs accuracy [95% CI] | judge_pairs ECE | acceptance")
    assert "| 0.123 |" in table and "| 0.050 |" in table


def test_data_show_prints_the_judge_prompt_both_ways(shared_data: Path) -> None:
    result = runner.invoke(app, ["data", "show", "judge_pairs", "--data-dir", str(shared_data), "-n", "1", "--swap-augment"])
    assert result.exit_code == 0, result.output
    assert "prompt style: judge" in result.output and "~swap (answer" in result.output
    assert result.output.count("[End of response B]") == 4  # worked example + question, in both orders
