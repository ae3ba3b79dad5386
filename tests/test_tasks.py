"""Tasks: registry, sources (data dir, local paths, hub), converters and the `tasks`/`data` commands.

Runs offline: the hub is replaced by a fake `datasets.load_dataset`; the Hugging Face schemas are
checked on the saved fixtures in ../shared/data/hf against the normalized files.
"""

from __future__ import annotations

import csv
import json
import sys
import types
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fem_cli.cli.main import app
from fem_cli.errors import FemError
from fem_cli.jsonl import read_jsonl, write_jsonl
from fem_cli.records import Question
from fem_cli.tasks import DATA_DIR_ENV, get_task, list_tasks, load_questions
from fem_cli.tasks.registry import MMLU_SUBJECTS

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
needs_data = pytest.mark.skipif(not (DATA / "SOURCES.md").is_file(), reason=f"shared data not found at {DATA}")

MMLU_FIXTURE_SUBJECTS = ("abstract_algebra", "college_biology", "high_school_physics")


@pytest.fixture(autouse=True)
def _no_data_dir_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # A developer's own $FEM_DATA_DIR must not change what these tests read.
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)


def normalized(relative: str, subject: str | None = None) -> list[Question]:
    return [q for q in read_jsonl(DATA / relative, Question) if subject is None or q.subject == subject]


ARC_ROW = {
    "id": "Mercury_1",
    "question": "Which is a [blank] metal?",
    "choices": {"text": ["iron", "wood", "glass"], "label": ["1", "2", "3"]},
    "answerKey": "1",
}
ARC_QUESTION = Question(id="Mercury_1", question="Which is a [blank] metal?", choices=["iron", "wood", "glass"],
                        labels=["1", "2", "3"], answer="1")
MMLU_ROWS = [
    {"question": "2+2?", "subject": "anatomy", "choices": ["1", "2", "3", "4"], "answer": 3},
    {"question": "1+1?", "subject": "virology", "choices": ["2", "3", "4", "5"], "answer": 0},
    {"question": "3+3?", "subject": "virology", "choices": ["5", "6", "7", "8"], "answer": 1},
]


# ---- registry ---------------------------------------------------------------------------------

def test_registry_lists_the_tasks_with_their_counts() -> None:
    assert [spec.name for spec in list_tasks()] == [
        "arc_easy", "arc_challenge", "openbookqa", "mmlu", "tldr_comparisons", "judge_pairs", "arith", "arith_hard"
    ]
    assert get_task("arc_challenge").counts["test"] == 1172
    assert get_task("openbookqa").counts["test"] == 500
    assert get_task("mmlu").splits == ("dev", "validation", "test")
    assert (get_task("arc_easy").hub_id, get_task("arc_easy").hub_config) == ("allenai/ai2_arc", "ARC-Easy")


def test_mmlu_subject_task() -> None:
    spec = get_task("mmlu:anatomy")
    assert (spec.name, spec.hub_config, spec.subject, spec.folder) == ("mmlu:anatomy", "anatomy", "anatomy", "mmlu")
    with pytest.raises(FemError, match="did you mean 'anatomy'"):
        get_task("mmlu:anatomi")
    with pytest.raises(FemError, match="no subsets"):
        get_task("arc_easy:x")


def test_unknown_task_suggests_the_closest_name() -> None:
    with pytest.raises(FemError, match="unknown task 'arc_chalenge'.*did you mean 'arc_challenge'"):
        load_questions("arc_chalenge", "validation")


@needs_data
def test_mmlu_subject_list_matches_the_data() -> None:
    subjects = {q.subject for q in read_jsonl(DATA / "mmlu" / "test.jsonl", Question)}
    assert sorted(subjects) == list(MMLU_SUBJECTS) and len(MMLU_SUBJECTS) == 57


# ---- Hugging Face schemas on the saved fixtures == the normalized files ------------------------

HF_CASES = [
    ("hf/ai2_arc/ARC-Challenge/validation", "arc_challenge/validation.jsonl", "validation", None),
    ("hf/ai2_arc/ARC-Easy/validation", "arc_easy/validation.jsonl", "validation", None),
    ("hf/openbookqa/main/validation", "openbookqa/validation.jsonl", "validation", None),
] + [
    (f"hf/hails/mmlu_no_train/{subject}/{split}", f"mmlu/{split}.jsonl", split, subject)
    for subject in MMLU_FIXTURE_SUBJECTS
    for split in ("dev", "validation", "test")
]


@needs_data
@pytest.mark.parametrize(("folder", "normalized_file", "split", "subject"), HF_CASES, ids=[c[0] for c in HF_CASES])
def test_hf_fixture_converts_to_the_normalized_records(
    folder: str, normalized_file: str, split: str, subject: str | None
) -> None:
    loaded = load_questions(str(DATA / folder), split)
    expected = normalized(normalized_file, subject)
    assert expected and loaded.questions == expected
    assert loaded.path == DATA / folder and loaded.task == Path(folder).name
    assert "save_to_disk folder" in loaded.source


@needs_data
def test_arc_challenge_validation_keeps_odd_labels() -> None:
    loaded = load_questions(str(DATA / "hf/ai2_arc/ARC-Challenge/validation"), "validation")
    labels = {tuple(q.labels) for q in loaded.questions}
    assert {("1", "2", "3", "4"), ("A", "B", "C"), ("A", "B", "C", "D", "E")} <= labels


# ---- data dir ---------------------------------------------------------------------------------

@needs_data
def test_data_dir_source() -> None:
    loaded = load_questions("arc_easy", "validation", data_dir=DATA)
    assert len(loaded.questions) == 570
    assert loaded.path == DATA / "arc_easy" / "validation.jsonl"
    assert loaded.source == f"local normalized file {loaded.path}"
    assert loaded.task == "arc_easy"


@needs_data
def test_mmlu_subject_from_data_dir() -> None:
    loaded = load_questions("mmlu:abstract_algebra", "validation", data_dir=DATA)
    assert loaded.questions == normalized("mmlu/validation.jsonl", "abstract_algebra")
    assert len(loaded.questions) == 11 and loaded.questions[0].id == "validation-abstract_algebra-0000"
    assert loaded.path == DATA / "mmlu" / "validation.jsonl" and "subject abstract_algebra" in loaded.source


@needs_data
def test_data_dir_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DATA_DIR_ENV, str(DATA))
    loaded = load_questions("openbookqa", "validation")
    assert len(loaded.questions) == 500 and loaded.path == DATA / "openbookqa" / "validation.jsonl"


def test_missing_file_in_data_dir_names_the_path_and_skips_the_hub(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("datasets.load_dataset", _hub_must_not_be_called)
    with pytest.raises(FemError, match="no such file") as err:
        load_questions("arc_easy", "validation", data_dir=tmp_path)
    assert str(tmp_path / "arc_easy" / "validation.jsonl") in str(err.value)
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    with pytest.raises(FemError, match=r"\$FEM_DATA_DIR"):
        load_questions("arc_easy", "validation")


def test_unknown_split_lists_the_valid_ones() -> None:
    with pytest.raises(FemError, match="no split 'dev'.*train, validation, test"):
        load_questions("arc_easy", "dev")
    with pytest.raises(FemError, match="did you mean 'validation'"):
        load_questions("mmlu", "valdation")


@needs_data
def test_shuffle_and_limit_are_reproducible() -> None:
    def ids(seed: int) -> list[str]:
        loaded = load_questions("arc_challenge", "validation", data_dir=DATA, limit=20, shuffle=True, seed=seed)
        return [q.id for q in loaded.questions]

    assert ids(1) == ids(1) and len(ids(1)) == 20
    assert ids(1) != ids(2)
    # Subsets are cut from the full shuffled list: a larger limit extends a smaller one.
    longer = load_questions("arc_challenge", "validation", data_dir=DATA, limit=40, shuffle=True, seed=1)
    assert [q.id for q in longer.questions[:20]] == ids(1)
    first = load_questions("arc_challenge", "validation", data_dir=DATA, limit=3).questions
    assert [q.id for q in first] == [q.id for q in normalized("arc_challenge/validation.jsonl")[:3]]


@needs_data
def test_no_questions_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FemError, match=r"no questions .*\(limit 0\)"):
        load_questions("arc_easy", "validation", data_dir=DATA, limit=0)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(FemError, match="no questions in local JSON lines file"):
        load_questions(str(empty), "validation")
    with pytest.raises(FemError, match="limit must be 0 or more"):
        load_questions(str(empty), "validation", limit=-1)


# ---- hub (faked: these tests run offline) -----------------------------------------------------

def _hub_must_not_be_called(*args: object, **kwargs: object) -> None:
    raise AssertionError("the hub was asked although a data dir was given")


def test_hub_source_converts_and_filters_the_subject(monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    calls = []

    def fake_load_dataset(hub_id: str, config: str, split: str) -> datasets.Dataset:
        calls.append((hub_id, config, split))
        return datasets.Dataset.from_list(MMLU_ROWS)

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    loaded = load_questions("mmlu:virology", "validation")
    assert calls == [("cais/mmlu", "virology", "validation")]
    assert [q.id for q in loaded.questions] == ["validation-virology-0000", "validation-virology-0001"]
    assert [q.answer for q in loaded.questions] == ["A", "B"]
    assert loaded.source == "Hugging Face hub cais/mmlu (virology), split validation" and loaded.path is None


def test_a_task_added_in_one_place_runs_both_protocols(
    monkeypatch: pytest.MonkeyPatch, tiny_model: Path, tmp_path: Path
) -> None:
    """A new benchmark is one TaskSpec: its hub schema's converter and its loglik format with it."""
    import datasets

    from fem_cli.evaluation import RESULTS_FILE
    from fem_cli.records import EvalRecord
    from fem_cli.tasks.converters import Schema
    from fem_cli.tasks.loglik_formats import ChoiceRequest
    from fem_cli.tasks.registry import TASKS, TaskSpec

    def convert(rows, split):
        for index, row in enumerate(rows):
            yield Question(id=f"{split}-{index}", question=row["q"], choices=row["options"], labels=["A", "B"],
                           answer="AB"[row["correct"]])

    spec = TaskSpec(
        name="trivia", description="two-option trivia", splits=("validation",), licence="CC0",
        hub_id="someone/trivia", hub_config="default",
        converter=Schema("trivia", frozenset({"q", "options", "correct"}), convert),
        loglik_format=lambda question: ChoiceRequest(f"Q: {question.question}\nA:", list(question.choices)),
    )
    monkeypatch.setitem(TASKS, "trivia", spec)
    rows = [{"q": "What is 2 plus 2?", "options": ["4", "5"], "correct": 0},
            {"q": "Which is a colour?", "options": ["seven", "blue"], "correct": 1}]
    monkeypatch.setattr(datasets, "load_dataset", lambda hub_id, config, split: datasets.Dataset.from_list(rows))
    for protocol in ("loglik", "generative"):
        out = tmp_path / protocol
        result = CliRunner().invoke(app, ["evaluate", "--model", str(tiny_model), "--task", "trivia", "--protocol", protocol,
                                          "--backend", "hf", "--max-new-tokens", "4", "--threads", "1", "--out", str(out)])
        assert result.exit_code == 0, result.output
        records = read_jsonl(out / "trivia.jsonl", EvalRecord)
        assert [r.gold for r in records] == ["A", "B"] and (out / RESULTS_FILE).is_file()
        if protocol == "loglik":
            assert records[0].prompt == "Q: What is 2 plus 2?\nA:" and records[1].outputs == [" seven", " blue"]


def test_loglik_refuses_a_task_without_a_loglik_format(tiny_model: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["evaluate", "--model", str(tiny_model), "--task", "arc_easy,judge_pairs",
                                      "--protocol", "loglik", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "task judge_pairs has no loglik format" in result.output
    assert not (tmp_path / "o").exists()


def test_hub_failure_is_one_line_femerror(monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(*args: object, **kwargs: object) -> None:
        raise ConnectionError("Couldn't reach 'allenai/ai2_arc' on the Hub (LocalEntryNotFoundError)\nmore detail")

    monkeypatch.setattr("datasets.load_dataset", offline)
    with pytest.raises(FemError) as err:
        load_questions("arc_easy", "validation")
    message = str(err.value)
    assert "allenai/ai2_arc (ARC-Easy), split validation" in message and "ConnectionError" in message
    assert "\n" not in message and "FEM_DATA_DIR" in message


# ---- local paths in other formats and schemas -------------------------------------------------

def test_jsonl_in_hf_and_normalized_schema(tmp_path: Path) -> None:
    hf = tmp_path / "arc.jsonl"
    hf.write_text(json.dumps(ARC_ROW) + "\n")
    loaded = load_questions(str(hf), "test")
    assert loaded.questions == [ARC_QUESTION] and loaded.task == "arc" and loaded.path == hf
    assert loaded.source == f"local JSON lines file {hf} (ai2_arc schema)"

    mine = tmp_path / "mine.jsonl"
    write_jsonl(mine, [ARC_QUESTION])
    assert load_questions(str(mine), "test").questions == [ARC_QUESTION]


def test_json_list_and_json_lines(tmp_path: Path) -> None:
    obqa = {
        "id": "7-1",
        "question_stem": "Sun is a",
        "choices": {"text": ["star", "moon"], "label": ["A", "B"]},
        "answerKey": "A",
    }
    as_list = tmp_path / "obqa.json"
    as_list.write_text(json.dumps([obqa, obqa | {"id": "7-2"}], indent=2))
    assert [q.id for q in load_questions(str(as_list), "train").questions] == ["7-1", "7-2"]
    as_lines = tmp_path / "lines.json"
    as_lines.write_text("\n".join(json.dumps(row) for row in MMLU_ROWS))
    questions = load_questions(str(as_lines), "dev").questions
    assert [q.id for q in questions] == ["dev-anatomy-0000", "dev-virology-0000", "dev-virology-0001"]


def test_csv_in_normalized_and_hf_schema(tmp_path: Path) -> None:
    mine = tmp_path / "mine.csv"
    with mine.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "question", "choices", "labels", "answer", "subject"])
        # JSON lists and Python reprs (as pandas writes them) are both read; an empty cell is null.
        writer.writerow(["q1", "Pick one, please", json.dumps(["x", "y"]), "['A', 'B']", "B", ""])
    assert load_questions(str(mine), "validation").questions == [
        Question(id="q1", question="Pick one, please", choices=["x", "y"], labels=["A", "B"], answer="B")
    ]
    mmlu = tmp_path / "mmlu.csv"
    with mmlu.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["question", "subject", "choices", "answer"])
        writer.writeheader()
        writer.writerows([row | {"choices": json.dumps(row["choices"])} for row in MMLU_ROWS])
    questions = load_questions(str(mmlu), "test").questions
    assert [q.answer for q in questions] == ["D", "A", "B"] and questions[0].id == "test-anatomy-0000"


def test_parquet_in_hf_schema(tmp_path: Path) -> None:
    import pyarrow
    import pyarrow.parquet

    path = tmp_path / "arc.parquet"
    pyarrow.parquet.write_table(pyarrow.Table.from_pylist([ARC_ROW]), path)
    loaded = load_questions(str(path), "validation")
    assert loaded.questions == [ARC_QUESTION] and "parquet file" in loaded.source


def test_malformed_jsonl_line_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(ARC_ROW) + "\n{not json\n")
    with pytest.raises(FemError, match=rf"{path}:2: not valid JSON"):
        load_questions(str(path), "validation")


def test_bad_rows_name_file_and_row(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(ARC_ROW) + "\n\n" + json.dumps(ARC_ROW | {"answerKey": "Z"}) + "\n")
    with pytest.raises(FemError, match=rf"{path}:3: not a valid question: .*answer 'Z' is not one of the labels"):
        load_questions(str(path), "validation")
    mmlu = tmp_path / "mmlu.jsonl"
    mmlu.write_text("\n".join(json.dumps(row) for row in MMLU_ROWS[:1] + [MMLU_ROWS[1] | {"answer": 7}]))
    with pytest.raises(FemError, match=rf"{mmlu}:2: not a valid mmlu row: answer 7 is not an index 0-3"):
        load_questions(str(mmlu), "validation")
    unknown = tmp_path / "unknown.jsonl"
    unknown.write_text(json.dumps({"prompt": "hi"}) + "\n")
    with pytest.raises(FemError, match=rf"{unknown}:1: columns prompt match no known schema"):
        load_questions(str(unknown), "validation")


def test_missing_or_unsupported_paths(tmp_path: Path) -> None:
    with pytest.raises(FemError, match="no such file or folder"):
        load_questions(str(tmp_path / "nope.jsonl"), "validation")
    text = tmp_path / "questions.txt"
    text.write_text("hello")
    with pytest.raises(FemError, match="unsupported file type '.txt'"):
        load_questions(str(text), "validation")
    with pytest.raises(FemError, match="not one written by `datasets` save_to_disk"):
        load_questions(str(tmp_path), "validation")


def test_saved_dataset_dict_picks_the_split(tmp_path: Path) -> None:
    import datasets

    saved = datasets.DatasetDict({"train": datasets.Dataset.from_list([ARC_ROW])})
    saved.save_to_disk(str(tmp_path / "arc"))
    assert load_questions(str(tmp_path / "arc"), "train").questions == [ARC_QUESTION]
    with pytest.raises(FemError, match="no split 'test'.*it has train"):
        load_questions(str(tmp_path / "arc"), "test")


@needs_data
def test_records_are_readable_by_datasets(tmp_path: Path) -> None:
    import datasets

    questions = load_questions("arc_challenge", "validation", data_dir=DATA).questions
    path = tmp_path / "questions.jsonl"
    write_jsonl(path, questions)
    read_back = datasets.load_dataset("json", data_files=str(path), split="train", cache_dir=str(tmp_path / "cache"))
    assert len(read_back) == 299
    assert [Question.model_validate(row) for row in read_back] == questions


# ---- CLI --------------------------------------------------------------------------------------

runner = CliRunner()


def test_fem_tasks_lists_the_tasks() -> None:
    result = runner.invoke(app, ["tasks"])
    assert result.exit_code == 0, result.output
    for name in ("arc_easy", "arc_challenge", "openbookqa", "mmlu", "mmlu:<subject>", "1172", "CC BY-SA 4.0"):
        assert name in result.output


@needs_data
def test_fem_data_show_prints_prompted_questions() -> None:
    args = ["data", "show", "arc_challenge", "--split", "validation", "--data-dir", str(DATA), "-n", "2"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    first, second, third = normalized("arc_challenge/validation.jsonl")[:3]
    assert f"source: local normalized file {DATA / 'arc_challenge' / 'validation.jsonl'}" in result.output
    assert first.id in result.output and second.id in result.output and third.id not in result.output
    assert f"Question: {first.question}" in result.output
    # Each question: the worked example (user, assistant) and the question itself.
    assert result.output.count("[user]") == 4 and "The correct answer is" not in result.output


@needs_data
def test_fem_data_show_with_hint_and_model(monkeypatch: pytest.MonkeyPatch) -> None:
    # A stand-in for fem_cli.models: a tokenizer without a chat template renders "Role: text".
    fake_models = types.ModuleType("fem_cli.models")
    tokenizer = types.SimpleNamespace(chat_template=None, eos_token="</s>")
    fake_models.load_tokenizer = lambda model: tokenizer  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fem_cli.models", fake_models)
    args = ["data", "show", "mmlu:anatomy", "--split", "dev", "--data-dir", str(DATA), "-n", "1"]
    args += ["--hint", "--model", "tiny"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "dev-anatomy-0000" in result.output and "The correct answer is" in result.output
    assert "[rendered for tiny]" in result.output and "\nAssistant:" in result.output


def test_fem_data_show_unknown_task_is_one_line() -> None:
    result = runner.invoke(app, ["data", "show", "arc_chalenge"])
    assert result.exit_code == 2
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)
    lines = result.output.strip().splitlines()
    assert lines == ["error: unknown task 'arc_chalenge' (did you mean 'arc_challenge'?); `fem tasks` lists the tasks"]


@pytest.mark.parametrize("command", [["tasks"], ["data", "show"]])
def test_help_ends_with_an_example(command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0
    # The example comes after the option list (rich may wrap it over several lines).
    assert result.output.rfind("Example: fem") > result.output.rfind("--help")
