"""Property tests (hypothesis) for what reads user files: the JSONL readers, the question file
readers, the recipe loader and answer extraction. Any bytes and any JSON give either a valid
result or one FemError naming the file (and line), never another exception; what is written
reads back equal."""

from __future__ import annotations

import json
import string
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fem_cli.answers import consistency, content_answer, extract_answer
from fem_cli.config import build_config
from fem_cli.errors import FemError
from fem_cli.filtering import FilterConfig
from fem_cli.jsonl import read_jsonl, write_jsonl
from fem_cli.loop.config import LoopConfig
from fem_cli.records import Message, Question, Sample, TrainExample
from fem_cli.tasks import load_questions

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
# Objects that look like records: the right keys with arbitrary values, or stray keys.
QUESTION_KEYS = ["schema_version", "id", "question", "choices", "labels", "answer", "subject"]
record_like = st.dictionaries(st.sampled_from(QUESTION_KEYS) | st.text(max_size=6), json_values, max_size=8)
# Bytes that are often almost JSONL: JSON lines, with BOMs, bad UTF-8 and noise mixed in.
line_bytes = st.one_of(
    record_like.map(lambda value: json.dumps(value).encode()),
    json_values.map(lambda value: json.dumps(value, ensure_ascii=False).encode()),
    st.binary(max_size=40),
    st.sampled_from([b"\xef\xbb\xbf", b"\xff\xfe", b"\xc3", b"{", b"\x00", b"\r", "\u2028".encode()]),
)
file_bytes = st.lists(line_bytes, max_size=6).map(lambda lines: b"\n".join(lines))


def assert_names_the_file(error: FemError, path: Path) -> None:
    message = str(error)
    assert message.startswith(f"{path}:") and "\n" not in message, message


@FAST
@given(content=file_bytes)
def test_jsonl_reader_gives_records_or_one_error_naming_the_file(tmp_path_factory, content):
    path = tmp_path_factory.mktemp("jsonl") / "q.jsonl"
    path.write_bytes(content)
    for record_type in (Question, Sample, TrainExample):
        try:
            records = read_jsonl(path, record_type)
        except FemError as error:
            assert_names_the_file(error, path)
            assert str(error).split(":")[1].strip().isdigit() or "not UTF-8" in str(error), str(error)
        else:
            assert all(isinstance(record, record_type) for record in records)


@FAST
@given(content=file_bytes, suffix=st.sampled_from([".jsonl", ".json", ".csv"]))
def test_question_files_give_questions_or_one_error_naming_the_file(tmp_path_factory, content, suffix):
    path = tmp_path_factory.mktemp("questions") / f"q{suffix}"
    path.write_bytes(content)
    try:
        loaded = load_questions(str(path), "validation")
    except FemError as error:
        assert str(error).startswith((f"{path}", "no questions in")) and "\n" not in str(error), str(error)
    else:
        assert loaded.questions and len({q.id for q in loaded.questions}) == len(loaded.questions)


labels = st.lists(st.sampled_from(string.ascii_uppercase), min_size=2, max_size=5, unique=True)
questions = labels.flatmap(
    lambda chosen: st.builds(
        Question,
        id=st.text(min_size=1, max_size=12),
        question=st.text(max_size=60),
        choices=st.lists(st.text(max_size=20), min_size=len(chosen), max_size=len(chosen)),
        labels=st.just(chosen),
        answer=st.sampled_from(chosen),
        subject=st.none() | st.text(max_size=10),
    )
)
messages = st.lists(st.builds(Message, role=st.sampled_from(["system", "user", "assistant"]), content=st.text(max_size=40)), min_size=1, max_size=3)
train_examples = st.builds(
    TrainExample, question_id=st.text(max_size=10), prompt=messages, completion=st.text(min_size=1, max_size=60),
    sampler=st.sampled_from(["rs", "star", "pps"]), stage=st.sampled_from(["self", "rationalized", "hinted"]),
)


@FAST
@given(written=st.lists(questions, max_size=5), examples=st.lists(train_examples, max_size=5))
def test_written_records_read_back_equal(tmp_path_factory, written, examples):
    folder = tmp_path_factory.mktemp("roundtrip")
    write_jsonl(folder / "q.jsonl", written)
    write_jsonl(folder / "t.jsonl", examples)
    assert read_jsonl(folder / "q.jsonl", Question) == written
    assert read_jsonl(folder / "t.jsonl", TrainExample) == examples
    unique = list({q.id: q for q in written}.values())
    if unique:  # through the question-file path too (readers, schema detection, converters)
        write_jsonl(folder / "u.jsonl", unique)
        assert load_questions(str(folder / "u.jsonl"), "validation").questions == unique


recipe_text = st.one_of(
    st.binary(max_size=60),
    st.dictionaries(
        st.sampled_from(["samples", "out", "max_per_question", "min_words", "drop_leaks", "include", "iterations", "sample", "seed"])
        | st.text(max_size=8),
        json_values, max_size=5,
    ).map(lambda mapping: json.dumps(mapping).encode()),  # JSON is YAML
)


@FAST
@given(content=recipe_text, config_type=st.sampled_from([FilterConfig, LoopConfig]))
def test_recipes_give_a_config_or_one_error_naming_the_file(tmp_path_factory, content, config_type):
    path = tmp_path_factory.mktemp("recipe") / "r.yaml"
    path.write_bytes(content)
    try:
        build_config(config_type, recipe=path)
    except FemError as error:
        assert str(error).startswith(str(path)) and "\n" not in str(error), str(error)


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=300) | st.lists(st.sampled_from(["Answer:", " (B)", "**", "A", "the answer is", "\n", " ", "b)", "12",
                                                              "-3", " = ", "1,250", ". ", "choice C", "C. 12"]), max_size=30).map("".join),
       chosen=labels, choice_text=st.lists(st.text(max_size=8) | st.sampled_from(["12", "-3", "1,250", "2.5"]), min_size=5, max_size=5))
def test_answer_extraction_gives_a_label_or_none(text, chosen, choice_text):
    answer = extract_answer(text, chosen, choice_text[: len(chosen)])
    assert answer is None or answer in chosen
    # The working's own answer, read apart from the answer line, too.
    reached = content_answer(text, chosen, choice_text[: len(chosen)])
    assert reached is None or reached in chosen
    assert consistency(text, chosen, choice_text[: len(chosen)]) is (None if reached is None else reached == answer)


@pytest.mark.parametrize("record_type", [Question, TrainExample])
def test_a_truncated_last_line_names_its_line(tmp_path, record_type):
    path = tmp_path / "x.jsonl"
    path.write_text('\n{"b": ')
    with pytest.raises(FemError, match=rf"^{path}:2: not valid JSON"):
        read_jsonl(path, record_type)


def test_a_column_name_with_a_line_break_is_quoted(tmp_path):
    """Found by the property test above: a column named "\\n" broke the one-line error."""
    path = tmp_path / "q.jsonl"
    path.write_bytes(b'{"\\n": null}')
    with pytest.raises(FemError) as raised:
        load_questions(str(path), "validation")
    assert str(raised.value).startswith(f"{path}:1: columns '\\n' match no known schema") and "\n" not in str(raised.value)
