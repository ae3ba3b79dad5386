"""Shared fixtures: a tiny real model built from a config, small question files, the shared data.

The tiny model is a 2-layer Llama with random weights and a byte-level BPE tokenizer trained here
on a few sentences, with a ChatML chat template. Its vocabulary also holds whole answer lines
("\nAnswer: A" ...) as single tokens, so that random sampling writes a parseable answer often
enough for the E-step to keep some samples and reject others, as a real model would.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

CORPUS = [
    "Question: which of these animals is a mammal? Think step by step, then finish with a last line.",
    "Sharks and trout are fish: they breathe through gills. A dolphin breathes air with lungs.",
    "The correct answer is B. Write the step-by-step reasoning that leads to it as if you had worked it out yourself.",
    "plants need sunlight and water to grow; the sun is a star; metals conduct electricity well.",
    "first we add the numbers, then we compare the result with each choice and pick the closest one.",
] * 20

ANSWER_TOKENS = ["\nAnswer: A", "\nAnswer: B", "\nAnswer: C", "\nAnswer: D"]


def build_tiny_model(folder: Path, seed: int = 0) -> Path:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=420,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(CORPUS, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>", bos_token=None
    )
    tokenizer.add_tokens(ANSWER_TOKENS)
    tokenizer.chat_template = CHATML_TEMPLATE
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """Folder of a tiny random Llama + ChatML tokenizer (usable as --model)."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


def make_questions(count: int, prefix: str = "q") -> list[dict]:
    questions = []
    for index in range(count):
        a, b = index + 2, index + 5
        choices = [str(a + b), str(a + b + 1), str(a * b), str(b - a)]
        questions.append(
            {
                "schema_version": 1,
                "id": f"{prefix}{index:03d}",
                "question": f"What is {a} plus {b}?",
                "choices": choices,
                "labels": ["A", "B", "C", "D"],
                "answer": "ABCD"[index % 4],
                "subject": None,
            }
        )
    return questions


@pytest.fixture
def questions_file(tmp_path) -> Path:
    """A normalized question file of 12 questions (answers cycle A, B, C, D)."""
    path = tmp_path / "questions.jsonl"
    path.write_text("".join(json.dumps(q) + "\n" for q in make_questions(12)))
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared benchmark data not found at {SHARED_DATA}")
    return SHARED_DATA
