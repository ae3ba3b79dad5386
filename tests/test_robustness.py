"""Bad input and interruptions: duplicate ids, byte-order marks, unwritable outputs, prompts
longer than the model, leftover temporary files, per-batch checkpoints and Ctrl-C."""

from __future__ import annotations

import csv as csv_module
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli_helpers import assert_one_line_error, fem
from conftest import make_questions
from fem_cli.errors import FemError
from fem_cli.evaluation.config import EvaluateConfig
from fem_cli.evaluation.run import run_evaluate
from fem_cli.jsonl import atomic_write, read_jsonl, write_jsonl
from fem_cli.records import Question, Sample
from fem_cli.sample import SampleConfig, run_sample
from fem_cli.tasks import load_questions


def write_questions(path: Path, questions: list[dict], bom: bool = False) -> Path:
    text = "".join(json.dumps(q) + "\n" for q in questions)
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode())
    return path


# --- duplicate ids -----------------------------------------------------------------------------


def test_duplicate_question_ids_name_both_lines(tmp_path):
    questions = make_questions(4)
    questions[3]["id"] = questions[1]["id"]
    path = write_questions(tmp_path / "q.jsonl", questions)
    with pytest.raises(FemError, match=rf"^{path}:4: duplicate id 'q001' \(first on line 2\)$"):
        load_questions(str(path), "validation")
    # The normalized layout of a data dir is read by another path; the same check holds there.
    folder = tmp_path / "data" / "arc_easy"
    folder.mkdir(parents=True)
    write_questions(folder / "validation.jsonl", questions)
    with pytest.raises(FemError, match=r"validation.jsonl:4: duplicate id 'q001' \(first on line 2\)"):
        load_questions("arc_easy", "validation", data_dir=tmp_path / "data")
    # CSV rows are located by their line too.
    csv = tmp_path / "q.csv"
    with csv.open("w", newline="") as handle:
        writer = csv_module.writer(handle)
        writer.writerow(["id", "question", "choices", "labels", "answer"])
        for q in questions:
            writer.writerow([q["id"], q["question"], json.dumps(q["choices"]), json.dumps(q["labels"]), q["answer"]])
    with pytest.raises(FemError, match=r"q.csv:5: duplicate id 'q001' \(first on line 3\)"):
        load_questions(str(csv), "validation")


def sample_record(question_id: str, index: int, stage: str = "hinted") -> Sample:
    message = {"role": "user", "content": "?"}
    return Sample(
        question_id=question_id, sampler="pps", stage=stage, hinted=stage != "self", sample_index=index,
        prompt=[message], train_prompt=[message], text="We add the numbers and get it.\nAnswer: A",
        num_tokens=5, finish_reason="stop", labels=["A", "B"], choices=["1", "2"], gold="A",
        extracted="A", reward=1.0, model="m",
        generation={"backend": "hf", "temperature": 0.7, "top_p": 1.0, "max_new_tokens": 9, "seed": 0}, seed=0,
    )


def test_filter_refuses_a_draw_given_twice_but_takes_shards_and_swapped_copies(tmp_path):
    shard0 = tmp_path / "s0.jsonl"
    shard1 = tmp_path / "s1.jsonl"
    write_jsonl(shard0, [sample_record("a", 0), sample_record("a", 1), sample_record("a~swap", 0)])
    write_jsonl(shard1, [sample_record("b", 0), sample_record("b", 0, stage="self")])  # STaR numbers each stage from 0
    result = fem("filter", shard0, shard1, "--out", tmp_path / "train.jsonl")
    assert result.exit_code == 0, result.output
    result = fem("filter", shard0, shard1, shard0, "--out", tmp_path / "train2.jsonl")
    assert_one_line_error(result, f"{shard0}:1: duplicate draw (question_id, stage, sample_index) ('a', 'hinted', 0) (first on line 1: the file is given twice)")
    assert not (tmp_path / "train2.jsonl").exists()


# --- byte-order marks --------------------------------------------------------------------------


def test_a_utf8_byte_order_mark_is_accepted_everywhere(tmp_path):
    path = write_questions(tmp_path / "q.jsonl", make_questions(3), bom=True)
    assert [q.id for q in load_questions(str(path), "validation").questions] == ["q000", "q001", "q002"]
    samples = tmp_path / "s.jsonl"
    samples.write_bytes(b"\xef\xbb\xbf" + sample_record("a", 0).model_dump_json().encode() + b"\n")
    assert read_jsonl(samples, Sample)[0].question_id == "a"
    csv = tmp_path / "q.csv"
    csv.write_bytes(b'\xef\xbb\xbfid,question,choices,labels,answer\nx,?,"[""1"", ""2""]","[""A"", ""B""]",A\n')
    assert load_questions(str(csv), "validation").questions[0].id == "x"
    recipe = tmp_path / "r.yaml"
    recipe.write_bytes(b"\xef\xbb\xbfsamples: [" + str(samples).encode() + b"]\nmin_words: 0\n")
    result = fem("filter", "--config", recipe, "--out", tmp_path / "t.jsonl")
    assert result.exit_code == 0, result.output


# --- unwritable outputs ------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["proc", "below-a-file"])
def test_an_unwritable_out_fails_in_one_line_before_any_model_loads(tmp_path, questions_file, where):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    folder = Path("/proc/fem-test") if where == "proc" else blocker / "sub"
    # The model does not exist: the output is checked first.
    missing_model = tmp_path / "no-model"
    samples = tmp_path / "s.jsonl"
    write_jsonl(samples, [sample_record("a", 0)])
    commands = {
        "sample": ["sample", "--model", missing_model, "--task", questions_file, "--out", folder / "s.jsonl"],
        "filter": ["filter", samples, "--out", folder / "t.jsonl"],
        "finetune": ["finetune", "--model", missing_model, "--train", samples, "--out", folder / "ckpt"],
        "evaluate": ["evaluate", "--model", missing_model, "--task", questions_file, "--out", folder / "eval"],
        "loop": ["loop", "--model", missing_model, "--task", questions_file, "--runs-dir", folder],
        "report": ["report", tmp_path, "--out", folder / "report"],
    }
    for name, args in commands.items():
        result = fem(*args)
        assert_one_line_error(result, f"cannot write {folder}")
        assert "unknown model" not in result.output and "cannot load" not in result.output, name


def test_out_that_is_a_file_where_a_folder_belongs(tmp_path, questions_file):
    blocker = tmp_path / "eval"
    blocker.write_text("x")
    result = fem("evaluate", "--model", tmp_path / "none", "--task", questions_file, "--out", blocker)
    assert_one_line_error(result, f"cannot write {blocker}: it is a file, not a folder")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_folder(tmp_path, questions_file):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    result = fem("filter", questions_file, "--out", folder / "t.jsonl")
    assert_one_line_error(result, f"cannot write {folder / 't.jsonl'}: cannot create files in {folder}")


# --- leftover temporary files ------------------------------------------------------------------


def test_a_killed_writers_temporary_file_is_removed_by_the_next_write(tmp_path):
    target = tmp_path / "out.jsonl"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".out.jsonl.{dead.stdout.strip()}.abc.tmp"
    stale.write_text("half")
    live = tmp_path / f".out.jsonl.{os.getppid()}.abc.tmp"  # a writer that still runs keeps its file
    live.write_text("busy")
    write_jsonl(target, [sample_record("a", 0)])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, "out.jsonl"])
    # A writer that fails removes its own temporary file and leaves the old output in place.
    with pytest.raises(RuntimeError):
        with atomic_write(target) as handle:
            handle.write("partial")
            raise RuntimeError("killed")
    assert read_jsonl(target, Sample)[0].question_id == "a"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, "out.jsonl"])


# --- prompts longer than the model ------------------------------------------------------------


def long_questions(tmp_path: Path) -> Path:
    questions = make_questions(3)
    questions[1]["question"] = " ".join(["plants"] * 40_000)
    return write_questions(tmp_path / "long.jsonl", questions)


def test_a_40000_word_prompt_is_skipped_in_seconds_and_counted(tiny_model, tmp_path):
    questions = long_questions(tmp_path)
    out = tmp_path / "s.jsonl"
    started = time.perf_counter()
    result = fem("sample", "--model", tiny_model, "--task", questions, "--backend", "hf", "--max-new-tokens", "8",
                 "--num-samples", "2", "--out", out)
    assert result.exit_code == 0, result.output
    assert time.perf_counter() - started < 60  # the tiny model generates 2 x 2 x 8 tokens: seconds, not minutes
    assert "warning: question 'q001': its prompt has" in result.output and "maximum length 2048; skipped" in result.output
    assert {s.question_id for s in read_jsonl(out, Sample)} == {"q000", "q002"}
    summary = json.loads(Path(f"{out}.summary.json").read_text())
    assert summary["skipped_too_long"] == 1 and summary["skipped_too_long_questions"][0]["id"] == "q001"

    result = fem("sample", "--model", tiny_model, "--task", questions, "--backend", "hf", "--on-long", "error",
                 "--out", tmp_path / "e.jsonl")
    assert_one_line_error(result, "question 'q001': its prompt has")
    assert not (tmp_path / "e.jsonl").exists()

    result = fem("evaluate", "--model", tiny_model, "--task", questions, "--backend", "hf", "--max-new-tokens", "8",
                 "--out", tmp_path / "eval")
    assert result.exit_code == 0, result.output
    task = json.loads((tmp_path / "eval" / "results.json").read_text())["tasks"]["long"]
    assert task["questions"] == 2 and task["skipped_too_long"] == 1
    result = fem("evaluate", "--model", tiny_model, "--task", questions, "--protocol", "loglik", "--on-long", "error",
                 "--out", tmp_path / "eval2")
    assert_one_line_error(result, "question 'q001'")


def test_measuring_a_40000_word_prompt_takes_well_under_a_second(tiny_model):
    from fem_cli.lengths import prompt_length
    from fem_cli.models import load_tokenizer
    from fem_cli.prompts import PromptTemplate, build_messages

    tokenizer = load_tokenizer(str(tiny_model))
    question = Question.model_validate({**make_questions(1)[0], "question": " ".join(["sunlight"] * 40_000)})
    started = time.perf_counter()
    tokens = prompt_length(tokenizer, build_messages(question, PromptTemplate(), hint=True))
    assert tokens > 40_000 and time.perf_counter() - started < 5


# --- per-batch checkpoints ---------------------------------------------------------------------


def interrupt_after(batches: int):
    """A progress callback that raises in the batch after `batches` batches of 4 questions."""

    def progress(*args) -> None:  # sample: (stage, done, total, tokens); evaluate: (task, done, total)
        done, total = args[1:3]
        if 4 * batches < done < total:
            raise KeyboardInterrupt

    return progress


def test_an_interrupted_sample_run_resumes_from_its_checkpoint_with_the_same_bytes(tiny_model, questions_file, tmp_path):
    def config(out: Path, **changes) -> SampleConfig:
        return SampleConfig(model=str(tiny_model), task=str(questions_file), backend="hf", sampler="star",
                            max_new_tokens=24, num_samples=2, checkpoint_every=4, out=str(out), **changes)

    reference = run_sample(config(tmp_path / "ref" / "s.jsonl"), on_status=lambda _: None)
    out = tmp_path / "run" / "s.jsonl"
    with pytest.raises(KeyboardInterrupt):
        run_sample(config(out), on_status=lambda _: None, progress=interrupt_after(2))
    partial = out.parent / ".s.jsonl.partial"
    assert not out.exists() and len(list(partial.glob("*.jsonl"))) == 2
    lines: list[str] = []
    run_sample(config(out), on_status=lines.append)
    assert any(line.startswith(f"resumed from {partial}: 2 of ") for line in lines), lines
    assert out.read_bytes() == reference.read_bytes() and not partial.exists()
    summary, expected = (json.loads(Path(f"{p}.summary.json").read_text()) for p in (out, reference))
    for record in (summary, expected):
        # "process": start-up and loading seconds, counted over this whole test process
        record.pop("wall_seconds"), record.pop("date"), record.pop("process"), record["config"].pop("out")
        for stage in record["stages"].values():
            stage.pop("wall_seconds"), stage.pop("tokens_per_second")
    assert summary == expected

    # A checkpoint of another config is never reused.
    with pytest.raises(KeyboardInterrupt):
        run_sample(config(out), on_status=lambda _: None, progress=interrupt_after(1))
    lines = []
    run_sample(config(out, seed=5), on_status=lines.append)
    assert any("made with another config" in line for line in lines) and not any("resumed" in line for line in lines)


def test_an_interrupted_evaluation_resumes_from_its_checkpoint_with_the_same_bytes(tiny_model, questions_file, tmp_path):
    def config(out: Path) -> EvaluateConfig:
        return EvaluateConfig(model=str(tiny_model), task=str(questions_file), backend="hf", max_new_tokens=16,
                              checkpoint_every=4, out=str(out))

    reference = run_evaluate(config(tmp_path / "ref"), on_status=lambda _: None)
    out = tmp_path / "eval"
    with pytest.raises(KeyboardInterrupt):
        run_evaluate(config(out), on_status=lambda _: None, progress=interrupt_after(1))
    lines: list[str] = []
    run_evaluate(config(out), on_status=lines.append)
    assert any(line.startswith("resumed from ") and ": 1 of 3 batches reused" in line for line in lines), lines
    assert (out / "questions.jsonl").read_bytes() == (reference / "questions.jsonl").read_bytes()
    assert (out / "questions.reliability.png").read_bytes() == (reference / "questions.reliability.png").read_bytes()
    results, expected = (json.loads((p / "results.json").read_text()) for p in (out, reference))
    for record in (results, expected):
        record.pop("wall_seconds"), record.pop("date"), record.pop("process"), record["config"].pop("out")
        record["tasks"]["questions"].pop("wall_seconds")
    assert results == expected


# --- Ctrl-C ------------------------------------------------------------------------------------


def start_fem(folder: Path, *args: object) -> subprocess.Popen:
    """`fem` in its own process group, SIGINT handled as at a terminal (a background shell job
    ignores SIGINT, and children inherit that)."""
    return subprocess.Popen(
        [sys.executable, "-m", "fem_cli", *map(str, args)], cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def test_ctrl_c_stops_a_stand_alone_command_in_one_line(tiny_model, questions_file, tmp_path):
    out = tmp_path / "s.jsonl"
    process = start_fem(tmp_path, "sample", "--model", tiny_model, "--task", questions_file, "--backend", "hf",
                        "--num-samples", "8", "--max-new-tokens", "200", "--batch-size", "2", "--checkpoint-every", "2",
                        "--out", out)
    partial = tmp_path / ".s.jsonl.partial"
    deadline = time.time() + 120
    while not list(partial.glob("*.jsonl")) and time.time() < deadline and process.poll() is None:
        time.sleep(0.1)
    os.killpg(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1] == "interrupted: rerun the same command to resume"
    assert not out.exists() and not list(tmp_path.glob(".*.tmp"))


def test_the_maximum_length_is_the_smaller_of_the_models_and_the_tokenizers():
    from types import SimpleNamespace

    from fem_cli.lengths import model_max_length

    config = SimpleNamespace(max_position_embeddings=2048)
    assert model_max_length(config, SimpleNamespace(model_max_length=512)) == 512
    # transformers' "no limit configured" sentinel is not a limit.
    assert model_max_length(config, SimpleNamespace(model_max_length=int(1e30))) == 2048
    assert model_max_length(SimpleNamespace(), SimpleNamespace(model_max_length=int(1e30))) is None
