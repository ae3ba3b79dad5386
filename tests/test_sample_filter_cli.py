"""`fem sample` -> `fem filter` end to end through the CLI, on the tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli_helpers import assert_one_line_error, fem
from fem_cli.jsonl import read_jsonl
from fem_cli.records import Sample, TrainExample


def sample_args(model: Path, task: Path, out: Path, *extra: str) -> list[str]:
    return ["sample", "--model", model, "--task", task, "--backend", "hf", "--max-new-tokens", "40",
            "--num-samples", "4", "--out", out, *extra]


def test_pps_sample_then_filter_trains_without_the_hint(tiny_model, questions_file, tmp_path):
    samples = tmp_path / "samples.jsonl"
    result = fem(*sample_args(tiny_model, questions_file, samples, "--sampler", "pps"))
    assert result.exit_code == 0, result.output
    records = read_jsonl(samples, Sample)
    assert len(records) == 12 * 4
    assert all(r.hinted and "The correct answer is" in r.prompt[-1].content for r in records)
    summary = json.loads(Path(f"{samples}.summary.json").read_text())
    stage = summary["stages"]["pps/hinted"]
    assert stage["samples"] == 48 and stage["accepted"] == sum(int(r.reward) for r in records)
    assert stage["tokens_generated"] == sum(r.num_tokens for r in records)
    # Of the accepted samples, those whose working reaches their answer (and those reaching another choice).
    assert stage["consistent"] == sum(bool(r.reward) and r.consistent is True for r in records)
    assert stage["inconsistent"] == sum(bool(r.reward) and r.consistent is False for r in records)
    assert stage["consistent_share"] == (stage["consistent"] / stage["accepted"] if stage["accepted"] else 0.0)
    assert summary["config"]["sampler"] == "pps" and summary["versions"]["torch"]
    assert stage["accepted"] > 0, "the tiny model should write some correct answer lines"

    train = tmp_path / "train.jsonl"
    result = fem("filter", samples, "--out", train, "--min-words", "0")
    assert result.exit_code == 0, result.output
    examples = read_jsonl(train, TrainExample)
    assert 0 < len(examples) <= stage["accepted"]
    for example in examples:
        assert all("The correct answer is" not in m.content for m in example.prompt)
    stats = json.loads(Path(f"{train}.stats.json").read_text())
    assert stats["kept"] == len(examples)
    assert stats["questions_with_kept"] == len({e.question_id for e in examples})


def test_same_seed_gives_byte_identical_samples(tiny_model, questions_file, tmp_path):
    first, second, other = tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "c.jsonl"
    assert fem(*sample_args(tiny_model, questions_file, first, "--sampler", "star", "--seed", "3")).exit_code == 0
    assert fem(*sample_args(tiny_model, questions_file, second, "--sampler", "star", "--seed", "3", "--batch-size", "5")).exit_code == 0
    assert fem(*sample_args(tiny_model, questions_file, other, "--sampler", "star", "--seed", "4")).exit_code == 0
    assert first.read_bytes() == second.read_bytes()
    assert first.read_bytes() != other.read_bytes()


def test_two_shards_merged_equal_one_unsharded_run(tiny_model, questions_file, tmp_path):
    whole = tmp_path / "whole.jsonl"
    assert fem(*sample_args(tiny_model, questions_file, whole, "--sampler", "star")).exit_code == 0
    shards = []
    for index in range(2):
        shard = tmp_path / f"shard{index}.jsonl"
        result = fem(*sample_args(tiny_model, questions_file, shard, "--sampler", "star", "--shard", f"{index}/2"))
        assert result.exit_code == 0, result.output
        shards.append(shard)
    assert fem("filter", whole, "--out", tmp_path / "whole-train.jsonl", "--min-words", "0").exit_code == 0
    assert fem("filter", *shards, "--out", tmp_path / "merged-train.jsonl", "--min-words", "0").exit_code == 0

    def kept(path: Path) -> set[tuple[str, str]]:
        return {(e.question_id, e.completion) for e in read_jsonl(path, TrainExample)}

    assert kept(tmp_path / "whole-train.jsonl") == kept(tmp_path / "merged-train.jsonl")
    assert kept(tmp_path / "whole-train.jsonl")


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--sampler", "stra"], "unknown sampler 'stra' (did you mean 'star'?)"),
        (["--sampler", "rs", "--budget", "0"], "budget must be >= 1"),
        (["--shard", "2/2"], "need 0 <= i < n"),
        (["--backend", "tpu"], "unknown backend 'tpu'"),
    ],
)
def test_bad_options_fail_in_one_line(tiny_model, questions_file, tmp_path, extra, message):
    out = tmp_path / "s.jsonl"
    result = fem(*sample_args(tiny_model, questions_file, out, *extra))
    assert_one_line_error(result, message)
    assert not out.exists()


def test_empty_task_and_unreadable_model_fail_in_one_line(tiny_model, tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    result = fem(*sample_args(tiny_model, empty, tmp_path / "s.jsonl"))
    assert_one_line_error(result, "no questions")

    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    questions = tmp_path / "q.jsonl"
    questions.write_text(json.dumps(
        {"id": "x", "question": "?", "choices": ["a", "b"], "labels": ["A", "B"], "answer": "A"}) + "\n")
    result = fem(*sample_args(broken, questions, tmp_path / "s.jsonl"))
    assert_one_line_error(result, f"{broken / 'config.json'}:1: not valid JSON")
    (broken / "config.json").write_text('{"hidden_size": 8}')
    result = fem(*sample_args(broken, questions, tmp_path / "s.jsonl"))
    assert_one_line_error(result, f"{broken / 'config.json'}: no model_type")
    # A folder whose weights cannot be loaded still fails in one line naming the model.
    (broken / "config.json").write_text('{"model_type": "llama"}')
    result = fem(*sample_args(broken, questions, tmp_path / "s.jsonl"))
    assert_one_line_error(result, "cannot load the tokenizer")
    assert not (tmp_path / "s.jsonl").exists()


def test_filter_reports_a_malformed_line_with_its_location(tmp_path):
    bad = tmp_path / "samples.jsonl"
    bad.write_text('{"schema_version": 1}\n')
    result = fem("filter", bad, "--out", tmp_path / "train.jsonl")
    assert_one_line_error(result, f"{bad}:1: not a valid Sample")
    assert not (tmp_path / "train.jsonl").exists()


@pytest.mark.slow
def test_smollm2_pps_on_arc_easy(shared_data, tmp_path):
    """The real embedded model on 8 ARC-Easy validation questions: hinted samples are accepted
    far more often than chance, and the training file is hint-free."""
    samples = tmp_path / "samples.jsonl"
    result = fem("sample", "--model", "smollm2", "--task", "arc_easy", "--split", "validation",
                 "--data-dir", shared_data, "--limit", "8", "--sampler", "pps", "--num-samples", "2",
                 "--max-new-tokens", "128", "--backend", "hf", "--out", samples)
    assert result.exit_code == 0, result.output
    records = read_jsonl(samples, Sample)
    assert len(records) == 16
    accepted = sum(int(r.reward) for r in records)
    assert accepted >= 5, [r.text for r in records]  # chance would be ~4 of 16
    result = fem("filter", samples, "--out", tmp_path / "train.jsonl")
    assert result.exit_code == 0, result.output
    for example in read_jsonl(tmp_path / "train.jsonl", TrainExample):
        assert all("The correct answer is" not in m.content for m in example.prompt)
