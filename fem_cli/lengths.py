"""Prompts longer than the model can take, found before any generation.

A question whose prompt tokens plus `max_new_tokens` exceed the model's maximum length (its
`max_position_embeddings`, the tokenizer's `model_max_length`, or vLLM's `max_model_len`) cannot
be answered: the hf backend would decode past the positions the model was trained on, vLLM
would refuse the request. `fem sample` and `fem evaluate` measure every prompt first (one
tokenizer pass, linear in the prompt's length) and skip such questions with a warning, counted
as `skipped_too_long` in their records, or, with `--on-long error`, stop with one line naming
the question.

    measure = lambda q: prompt_length(tokenizer, build_messages(q, template))
    kept, skipped = split_too_long(questions, measure, limit=2048, max_new_tokens=256, on_long="skip")
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from fem_cli.errors import FemError
from fem_cli.prompts import prompt_token_ids, render
from fem_cli.records import Message, Question

ON_LONG = ("skip", "error")
# Tokenizers without a configured limit report this huge sentinel (transformers' VERY_LARGE_INTEGER).
UNSET_TOKENIZER_LIMIT = 10**12


def check_on_long(value: str) -> None:
    if value not in ON_LONG:
        raise ValueError(f"on_long must be one of {', '.join(ON_LONG)}, got {value!r}")


def model_max_length(model_config: Any, tokenizer: Any) -> int | None:
    """The most tokens (prompt + completion) the model takes, or None when neither says."""
    limits = []
    text_config = model_config.get_text_config(decoder=True) if hasattr(model_config, "get_text_config") else model_config
    positions = getattr(text_config, "max_position_embeddings", None)
    if isinstance(positions, int) and positions > 0:
        limits.append(positions)
    tokenizer_limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(tokenizer_limit, int) and 0 < tokenizer_limit < UNSET_TOKENIZER_LIMIT:
        limits.append(tokenizer_limit)
    return min(limits) if limits else None


def prompt_length(tokenizer: Any, messages: Sequence[Message]) -> int:
    return len(prompt_token_ids(tokenizer, render(tokenizer, list(messages))))


def split_too_long(
    questions: Sequence[Question],
    measure: Callable[[Question], int],
    limit: int | None,
    max_new_tokens: int,
    on_long: str,
    warn: Callable[[str], None] = print,
) -> tuple[list[Question], list[dict[str, Any]]]:
    """(questions that fit, [{id, prompt_tokens}] of those skipped). A question fits when its
    prompt tokens (`measure`: the longest prompt it will be given) plus `max_new_tokens` are
    within `limit`; with on_long == "error" the first that does not raises FemError."""
    if limit is None:
        return list(questions), []
    kept, skipped = [], []
    for question in questions:
        tokens = measure(question)
        if tokens + max_new_tokens <= limit:
            kept.append(question)
            continue
        why = (
            f"question {question.id!r}: its prompt has {tokens} tokens, + max_new_tokens {max_new_tokens} "
            f"= {tokens + max_new_tokens}, more than the model's maximum length {limit}"
        )
        if on_long == "error":
            raise FemError(f"{why} (--on-long skip skips such questions)")
        warn(f"warning: {why}; skipped")
        skipped.append({"id": question.id, "prompt_tokens": tokens})
    return kept, skipped
