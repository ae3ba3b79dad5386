"""`fem finetune` (the M-step) on a tiny Llama with a real ChatML template: masking, outputs, errors.

Each run trains the tiny model of conftest.py for a few steps (under a second); the two-process
torchrun test starts two Python interpreters (about 10 s).
"""

from __future__ import annotations

import copy
import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from fem_cli import runtime
from fem_cli.cli.main import app
from fem_cli.config import build_config
from fem_cli.errors import FemError
from fem_cli.jsonl import write_jsonl
from fem_cli.models import load_model, load_tokenizer, prepared_folder, resolve_model
from fem_cli.prompts import PromptTemplate, build_messages, render
from fem_cli.records import Question, TrainExample
from fem_cli.runtime import Hardware
from fem_cli.train.config import FinetuneConfig
from fem_cli.train.data import IGNORE_INDEX, CompletionCollator, tokenize_example, tokenize_examples
from fem_cli.train.finetune import MARKER, completion_only_loss, run_finetune

runner = CliRunner()
SHORT_PROMPT = PromptTemplate(worked_example=False)

FACTS = [
    ("Which of these animals is a mammal?", ["shark", "dolphin", "trout", "octopus"], "B",
     "Sharks and trout are fish. A dolphin breathes air with lungs, so it is a mammal."),
    ("At what temperature does water boil at sea level?", ["100 degrees", "50 degrees", "0 degrees"], "A",
     "Water boils at 100 degrees at sea level."),
    ("What is the sum of two and three?", ["four", "six", "five", "seven"], "C",
     "Two and three make five."),
    ("What happens to ice when it is warmed?", ["it melts", "it grows", "it freezes", "nothing"], "A",
     "Ice melts when it is warmed."),
]


def make_examples(count: int, rationale_repeats: int = 1) -> list[TrainExample]:
    examples = []
    for index in range(count):
        text, choices, answer, rationale = FACTS[index % len(FACTS)]
        labels = [chr(ord("A") + i) for i in range(len(choices))]
        question = Question(id=f"q{index}", question=text, choices=choices, labels=labels, answer=answer)
        examples.append(
            TrainExample(
                question_id=question.id,
                prompt=build_messages(question, SHORT_PROMPT),
                completion=" ".join([rationale] * rationale_repeats) + f"\nAnswer: {answer}",
                sampler="rs",
                stage="self",
            )
        )
    return examples


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # The tiny model's ops are too small to split; on shared cores, OpenMP threads waiting for
    # each other made each run 3 to 30 times slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_tokenizer(tiny_model: Path):
    return load_tokenizer(str(tiny_model))


@pytest.fixture
def train_file(tmp_path: Path) -> Path:
    path = tmp_path / "train.jsonl"
    write_jsonl(path, make_examples(16))
    return path


def finetune(*args: str):
    return runner.invoke(app, ["finetune", *args])


def read_record(folder: Path) -> dict:
    return json.loads((folder / MARKER).read_text())


def generates(folder: Path) -> None:
    tokenizer = load_tokenizer(str(folder))
    model = load_model(str(folder))
    prompt = render(tokenizer, make_examples(1)[0].prompt)
    input_ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
    output = model.generate(input_ids, max_new_tokens=4, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    assert output.shape[1] > input_ids.shape[1]


# --- masking -----------------------------------------------------------------------------------

def tokenizers_under_test(tiny_tokenizer):
    yield "tiny-chatml", tiny_tokenizer
    if (prepared_folder("smollm2") / "config.json").is_file():
        yield "smollm2", load_tokenizer(str(prepared_folder("smollm2")))


@pytest.mark.parametrize("template", [SHORT_PROMPT, PromptTemplate(system="Be brief.")], ids=["one-turn", "multi-turn"])
# A sampled completion can start with a newline, which a tokenizer would merge with the template's
# newline before it if prompt and completion were tokenized as one text.
@pytest.mark.parametrize("completion", ["A dolphin breathes air with lungs.\n\nAnswer: B", "\n\nA dolphin, so\nAnswer: B"],
                         ids=["plain", "leading-newlines"])
def test_only_completion_and_end_of_turn_are_trained(tiny_tokenizer, template: PromptTemplate, completion: str) -> None:
    question = Question(id="q", question="Which is a mammal?", choices=["shark", "dolphin"], labels=["A", "B"], answer="B")
    example = TrainExample(
        question_id="q", prompt=build_messages(question, template), completion=completion, sampler="rs", stage="self"
    )
    for name, tokenizer in tokenizers_under_test(tiny_tokenizer):
        feature = tokenize_example(tokenizer, example, "test")
        ids, labels = feature["input_ids"], feature["labels"]
        assert len(ids) == len(labels)
        prompt_length = len(tokenizer(render(tokenizer, example.prompt), add_special_tokens=False)["input_ids"])
        trained = [i for i, label in enumerate(labels) if label != IGNORE_INDEX]
        # Token by token: every prompt position masked; the trained span is contiguous, starts right
        # after the prompt, its labels are the input tokens, and it ends with the end-of-turn token.
        assert all(label == IGNORE_INDEX for label in labels[:prompt_length]), name
        assert trained == list(range(prompt_length, trained[-1] + 1)), name
        assert all(labels[i] == ids[i] for i in trained), name
        assert ids[trained[-1]] == tokenizer.convert_tokens_to_ids("<|im_end|>"), name
        assert tokenizer.decode([ids[i] for i in trained]) == completion + "<|im_end|>", name
        # ChatML's newline after <|im_end|> is written by the template but not trained.
        assert tokenizer.decode(ids[trained[-1] + 1:]) == "\n", name
        assert tokenizer.decode(ids[:prompt_length]) == render(tokenizer, example.prompt), name


def test_template_that_changes_the_prompt_is_refused(tiny_tokenizer) -> None:
    tokenizer = copy.deepcopy(tiny_tokenizer)
    # A "thinking" template: the generation prompt opens a block the training render lacks.
    tokenizer.chat_template = tiny_tokenizer.chat_template.replace("assistant\n' }}", "assistant\n<think>\n' }}")
    example = make_examples(1)[0]
    with pytest.raises(FemError, match=r"train.jsonl: example 1 \(q0\).*prefix"):
        tokenize_examples(tokenizer, [example], max_length=512, source="train.jsonl")


def test_collator_pads_dynamically(tiny_tokenizer) -> None:
    features = [tokenize_example(tiny_tokenizer, e, "t") for e in make_examples(3, rationale_repeats=1)]
    batch = CompletionCollator(pad_token_id=tiny_tokenizer.pad_token_id)(features)
    longest = max(len(f["input_ids"]) for f in features)
    assert batch["input_ids"].shape == (3, longest)
    for row, feature in enumerate(features):
        length = len(feature["input_ids"])
        assert batch["attention_mask"][row].sum() == length
        assert (batch["labels"][row, length:] == IGNORE_INDEX).all()
        assert (batch["input_ids"][row, length:] == tiny_tokenizer.pad_token_id).all()


def test_completion_only_loss_equals_the_models_own_loss(tiny_model: Path, tiny_tokenizer) -> None:
    # Rows of different lengths, so the kept positions differ per row and padding is involved.
    examples = make_examples(2) + make_examples(1, rationale_repeats=3)
    features = [tokenize_example(tiny_tokenizer, e, "t") for e in examples]
    batch = CompletionCollator(pad_token_id=tiny_tokenizer.pad_token_id)(features)
    model = load_model(str(tiny_model))
    loss_sum, count, outputs = completion_only_loss(model, batch)
    assert count == sum(label != IGNORE_INDEX for f in features for label in f["labels"])
    assert outputs.logits.shape[1] < batch["input_ids"].shape[1]  # prompt positions skipped the LM head
    assert torch.allclose(loss_sum / count, model(**batch).loss, rtol=1e-5)


# --- end to end through the CLI -----------------------------------------------------------------

def test_full_finetune(tiny_model: Path, train_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "ckpt"
    result = finetune("--model", str(tiny_model), "--train", str(train_file), "--out", str(out),
                      "--learning-rate", "1e-3", "--batch-size", "4", "--seed", "3")
    assert result.exit_code == 0, result.output
    record = read_record(out)
    assert record["counts"]["examples_read"] == record["counts"]["kept"] == 16
    assert record["counts"]["dropped_too_long"] == 0
    assert 0 < record["counts"]["completion_tokens_per_epoch"] < record["counts"]["total_tokens_per_epoch"]
    training = record["training"]
    assert training["steps"] == 4 and len(training["losses"]) == 4
    assert all(math.isfinite(entry["loss"]) and entry["loss"] > 0 for entry in training["losses"])
    assert training["tokens_seen"] == record["counts"]["total_tokens_per_epoch"]
    assert training["tokens_per_s"] > 0
    assert record["provenance"]["config"]["seed"] == 3
    assert list(record["provenance"]["inputs"]) == [str(train_file)]
    assert record["init"] == "base" and record["model"]["saved"] == "full"
    assert (out / "model.safetensors").is_file() and (out / "chat_template.jinja").is_file()
    assert not list(tmp_path.glob(".ckpt*")), "staging folder left behind"
    assert "final loss" in result.output
    generates(out)


@pytest.mark.parametrize("merge", [True, False], ids=["merged", "adapter"])
def test_lora_finetune(tiny_model: Path, train_file: Path, tmp_path: Path, merge: bool) -> None:
    out = tmp_path / "lora"
    result = finetune("--model", str(tiny_model), "--train", str(train_file), "--out", str(out),
                      "--lora-r", "4", "--learning-rate", "1e-3", "--batch-size", "8", "--merge" if merge else "--no-merge")
    assert result.exit_code == 0, result.output
    record = read_record(out)
    assert record["model"]["saved"] == ("lora-merged" if merge else "lora-adapter")
    assert all(math.isfinite(entry["loss"]) for entry in record["training"]["losses"])
    if merge:
        assert (out / "model.safetensors").is_file() and not (out / "adapter_config.json").exists()
    else:
        adapter = json.loads((out / "adapter_config.json").read_text())
        assert adapter["base_model_name_or_path"] == str(tiny_model)
        assert resolve_model(str(out)).adapter == str(out)
    generates(out)


def test_bf16_mixed_precision_keeps_fp32_weights(tiny_model: Path, train_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "ckpt"
    result = finetune("--model", str(tiny_model), "--train", str(train_file), "--out", str(out), "--precision", "bf16")
    assert result.exit_code == 0, result.output
    training = read_record(out)["training"]
    assert (training["precision"], training["precision_why"]) == ("bf16", "--precision bf16")
    assert all(math.isfinite(entry["loss"]) for entry in training["losses"])
    assert json.loads((out / "config.json").read_text())["dtype"] == "float32"


@pytest.mark.parametrize(
    ("hardware", "precision", "why"),
    [
        (Hardware(cpu_flags=frozenset({"avx2", "avx512f"})), "fp32", "auto: the CPU has neither avx512_bf16 nor amx_bf16"),
        (Hardware(cpu_flags=frozenset({"avx512f", "avx512_bf16"})), "bf16", "auto: the CPU has avx512_bf16"),
    ],
)
def test_auto_precision_follows_the_hardware_and_is_recorded(
    tiny_model: Path, train_file: Path, tmp_path: Path, monkeypatch, hardware, precision, why
) -> None:
    monkeypatch.setattr(runtime, "detect_hardware", lambda: hardware)
    out = tmp_path / "ckpt"
    result = finetune("--model", str(tiny_model), "--train", str(train_file), "--out", str(out))
    assert result.exit_code == 0, result.output
    record = read_record(out)
    assert record["provenance"]["config"]["precision"] == "auto"
    assert record["training"]["precision"] == precision
    assert record["training"]["precision_why"].startswith(why)


def test_continue_from_an_adapter_keeps_training_it(tiny_model: Path, train_file: Path, tmp_path: Path) -> None:
    first, second = tmp_path / "it1", tmp_path / "it2"
    common = ["--train", str(train_file), "--lora-r", "4", "--learning-rate", "1e-3", "--batch-size", "8"]
    assert finetune("--model", str(tiny_model), "--out", str(first), *common).exit_code == 0
    result = finetune("--model", str(first), "--out", str(second), "--init", "continue", *common)
    assert result.exit_code == 0, result.output
    record = read_record(second)
    assert record["init"] == "continue" and record["model"]["adapter_in"] == str(first)
    assert json.loads((second / "adapter_config.json").read_text())["base_model_name_or_path"] == str(tiny_model)
    mismatch = finetune("--model", str(first), "--out", str(tmp_path / "it3"), *common[:-4], "--lora-r", "8")
    assert mismatch.exit_code == 2 and "LoRA rank 4" in mismatch.output


def test_too_long_examples_are_dropped_and_counted(tiny_model: Path, tmp_path: Path, tiny_tokenizer) -> None:
    short, long = make_examples(6), make_examples(3, rationale_repeats=12)
    path = tmp_path / "train.jsonl"
    write_jsonl(path, short + long)
    longest_short = max(len(tokenize_example(tiny_tokenizer, e, "t")["input_ids"]) for e in short)
    out = tmp_path / "ckpt"
    result = finetune("--model", str(tiny_model), "--train", str(path), "--out", str(out),
                      "--max-length", str(longest_short), "--batch-size", "3")
    assert result.exit_code == 0, result.output
    counts = read_record(out)["counts"]
    assert (counts["examples_read"], counts["kept"], counts["dropped_too_long"]) == (9, 6, 3)


def test_all_too_long_is_an_error(tiny_model: Path, train_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "ckpt"
    result = finetune("--model", str(tiny_model), "--train", str(train_file), "--out", str(out), "--max-length", "8")
    assert result.exit_code == 2
    assert "all 16 examples are longer than max_length=8" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not out.exists()


def test_malformed_line_names_file_and_line(tiny_model: Path, train_file: Path, tmp_path: Path) -> None:
    lines = train_file.read_text().splitlines()
    lines[2] = lines[2].replace('"completion"', '"completoin"')
    train_file.write_text("\n".join(lines) + "\n")
    result = finetune("--model", str(tiny_model), "--train", str(train_file), "--out", str(tmp_path / "o"))
    assert result.exit_code == 2
    assert f"{train_file}:3: not a valid TrainExample" in result.output


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--learning-rate", "-1e-5"], "learning_rate must be >= 0"),
        (["--precision", "fp16"], "'fp16' is not one of auto, fp32, bf16"),
        (["--init", "warm"], "'warm' is not one of base, continue"),
        (["--warmup-ratio", "1.5"], "warmup_ratio must be in [0, 1)"),
        (["--merge"], "merge needs LoRA"),
        (["--batch-size", "0"], "batch_size must be >= 1"),
    ],
)
def test_bad_options_fail_in_one_line(tiny_model: Path, train_file: Path, tmp_path: Path, flags, message) -> None:
    result = finetune("--model", str(tiny_model), "--train", str(train_file), "--out", str(tmp_path / "o"), *flags)
    assert result.exit_code == 2
    assert message in result.output and len(result.output.strip().splitlines()) == 1


@pytest.mark.skipif(importlib.util.find_spec("wandb") is not None, reason="wandb is installed")
def test_missing_reporter_package_is_named(tiny_model: Path, train_file: Path, tmp_path: Path) -> None:
    result = finetune("--model", str(tiny_model), "--train", str(train_file), "--out", str(tmp_path / "o"),
                      "--report-to", "wandb")
    assert result.exit_code == 2 and "pip install wandb" in result.output


def test_missing_train_file(tiny_model: Path, tmp_path: Path) -> None:
    result = finetune("--model", str(tiny_model), "--train", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "o"))
    assert result.exit_code == 2 and "nope.jsonl: no such file" in result.output


def test_recipe_and_flags(tmp_path: Path) -> None:
    recipe = tmp_path / "m_step.yaml"
    recipe.write_text("model: smollm2\ntrain: t.jsonl\nout: o\nepochs: 3\nlora_r: 8\n")
    cfg = build_config(FinetuneConfig, recipe=recipe, overrides={"epochs": 5, "lora_r": None})
    assert (cfg.epochs, cfg.lora_r, cfg.train) == (5, 8, Path("t.jsonl"))
    recipe.write_text("model: smollm2\ntrain: t.jsonl\nout: o\nlearnig_rate: 1.0\n")
    with pytest.raises(FemError, match="did you mean 'learning_rate'"):
        build_config(FinetuneConfig, recipe=recipe)


def test_existing_output_needs_overwrite(tiny_model: Path, train_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "ckpt"
    args = ["--model", str(tiny_model), "--train", str(train_file), "--out", str(out), "--batch-size", "16"]
    assert finetune(*args).exit_code == 0
    refused = finetune(*args)
    assert refused.exit_code == 2 and "--overwrite" in refused.output
    (out / "stale.txt").write_text("from the old output")
    assert finetune(*args, "--overwrite", "--epochs", "2").exit_code == 0
    assert read_record(out)["training"]["epochs"] == 2 and not (out / "stale.txt").exists()
    assert not list(tmp_path.glob(".ckpt*"))


# --- learning ------------------------------------------------------------------------------------

def test_loss_falls_on_a_repeated_dataset(tiny_model: Path, tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    write_jsonl(path, make_examples(8))
    cfg = FinetuneConfig(model=str(tiny_model), train=path, out=tmp_path / "ckpt", epochs=8,
                         batch_size=4, learning_rate=1e-2, seed=1)
    losses = [entry["loss"] for entry in read_record(run_finetune(cfg))["training"]["losses"]]
    assert len(losses) == 16
    first, last = sum(losses[:4]) / 4, sum(losses[-4:]) / 4
    assert last < 0.75 * first, losses  # chance level is ln(vocab) = 6.1


def test_torchrun_two_processes(tiny_model: Path, tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    write_jsonl(path, make_examples(16))
    out = tmp_path / "ckpt"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "fem_cli", "finetune", "--model", str(tiny_model), "--train", str(path), "--out", str(out),
        "--epochs", "6", "--batch-size", "2", "--learning-rate", "1e-2",
    ]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    record = read_record(out)
    assert record["training"]["world_size"] == 2
    # 16 examples / (2 per device x 2 processes) = 4 steps per epoch.
    assert record["training"]["steps"] == 24
    losses = [entry["loss"] for entry in record["training"]["losses"]]
    assert sum(losses[-4:]) < 0.75 * sum(losses[:4]), losses
    assert [p.name for p in tmp_path.iterdir() if p.name != "train.jsonl"] == ["ckpt"]
    assert done.stdout.count("fem finetune") == 1  # one summary, from rank 0
    generates(out)
