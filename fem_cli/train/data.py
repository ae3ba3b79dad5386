"""M-step data: tokenize TrainExamples with completion-only labels, drop over-long ones, pad batches.

The loss covers the completion only: the rationale, the final `Answer: X` line and the chat
template's end-of-turn token (`<|im_end|>` for ChatML), so the model learns to stop. Every prompt
token is labelled -100. What the template writes after the end-of-turn token (ChatML's trailing
newline) is masked too: generation stops at end-of-turn, so nothing after it is ever sampled.

    data = tokenize_examples(tokenizer, read_jsonl("train.jsonl", TrainExample), max_length=1024)
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Sequence

import torch

from fem_cli.errors import FemError
from fem_cli.prompts import render
from fem_cli.records import TrainExample

IGNORE_INDEX = -100  # the label value torch's cross-entropy skips

Features = dict[str, list[int]]


@dataclasses.dataclass(frozen=True)
class TokenizedData:
    """Kept examples as Trainer features ({input_ids, labels}), with what was dropped."""

    features: list[Features]
    read: int
    dropped_too_long: int

    @property
    def kept(self) -> int:
        return len(self.features)

    @property
    def total_tokens(self) -> int:
        return sum(len(f["input_ids"]) for f in self.features)

    @property
    def completion_tokens(self) -> int:
        return sum(label != IGNORE_INDEX for f in self.features for label in f["labels"])


def tokenize_example(tokenizer: Any, example: TrainExample, where: str) -> Features:
    """input_ids of prompt + completion; labels equal to them on the completion, -100 elsewhere.

    The prompt and the rest of the rendered text are tokenized apart and joined, so the model
    trains on the prompt tokens it sees at inference, followed by the completion from a token
    boundary, as generated text starts. Tokenizing the whole text at once can merge across the
    boundary (a completion that starts with a newline, after the template's own newline) and
    leave no token where the completion begins.
    """
    messages = list(example.prompt)
    prompt_text = render(tokenizer, messages)
    full_text = render(tokenizer, messages, example.completion)
    if not full_text.startswith(prompt_text):
        raise FemError(
            f"{where}: the chat template does not render the generation prompt as a prefix of "
            "prompt + completion, so the completion cannot be located"
        )
    # Chat templates write their own special tokens (BOS included where the model wants one).
    add_special = not getattr(tokenizer, "chat_template", None)
    prompt_ids = tokenizer(prompt_text, add_special_tokens=add_special)["input_ids"]
    rest_ids = tokenizer(full_text[len(prompt_text) :], add_special_tokens=False)["input_ids"]
    input_ids = prompt_ids + rest_ids
    start = len(prompt_ids)
    end = _end_of_turn(input_ids, start, tokenizer.eos_token_id)
    if end <= start:
        raise FemError(f"{where}: the completion renders to no tokens")
    labels = [IGNORE_INDEX] * start + input_ids[start:end] + [IGNORE_INDEX] * (len(input_ids) - end)
    return {"input_ids": input_ids, "labels": labels}


def _end_of_turn(input_ids: list[int], start: int, eos_id: int | None) -> int:
    """One past the last end-of-turn token after `start` (all of it when the template writes none)."""
    for position in range(len(input_ids) - 1, start - 1, -1):
        if input_ids[position] == eos_id:
            return position + 1
    return len(input_ids)


def tokenize_examples(
    tokenizer: Any, examples: Sequence[TrainExample], max_length: int, source: str | Path = "train"
) -> TokenizedData:
    features: list[Features] = []
    dropped = 0
    for index, example in enumerate(examples, start=1):
        feature = tokenize_example(tokenizer, example, f"{source}: example {index} ({example.question_id})")
        # Truncating would cut the completion first and can leave an all-masked example whose
        # loss is 0 (TRL issue #6668), so over-long examples are dropped and counted instead.
        if len(feature["input_ids"]) > max_length:
            dropped += 1
            continue
        features.append(feature)
    return TokenizedData(features=features, read=len(examples), dropped_too_long=dropped)


@dataclasses.dataclass(frozen=True)
class CompletionCollator:
    """Pads each batch to its own longest example (right side; labels padded with -100)."""

    pad_token_id: int

    def __call__(self, features: list[Features]) -> dict[str, torch.Tensor]:
        longest = max(len(f["input_ids"]) for f in features)
        input_ids = torch.full((len(features), longest), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(features), longest), IGNORE_INDEX, dtype=torch.long)
        attention_mask = torch.zeros((len(features), longest), dtype=torch.long)
        for row, feature in enumerate(features):
            length = len(feature["input_ids"])
            input_ids[row, :length] = torch.tensor(feature["input_ids"])
            labels[row, :length] = torch.tensor(feature["labels"])
            attention_mask[row, :length] = 1
        return {"input_ids": input_ids, "labels": labels, "attention_mask": attention_mask}
