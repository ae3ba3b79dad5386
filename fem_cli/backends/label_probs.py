"""Which label a completion commits to: the model's probability of each label at the answer position.

The `label_probs` capability of a backend (`base.LABEL_PROBS`): generative evaluation reads its
confidence from it, and `fem sample --verify` reads a hinted rationale's answer without the hint.
After a completion is generated, one forward pass reads the next-token distribution right where
the label is written: after the completion's last `Answer:` marker (and any space, `**` or `(`
the model wrote after it). Each label is scored by its first token as it would be written there
(e.g. " B" after "Answer:", "B" after "Answer: **"; tokens all labels share, such as a lone
space, join the context), and the probabilities are normalized over the question's labels. A completion without an `Answer:` marker is read after an appended
"\nAnswer:" line (the format the prompt asked for). `label_positions` says which token ids to read
(shared by both backends, so they score the same ids); `LabelProbabilityScorer` reads them with
one transformers forward pass (hf); vLLM reads them as prompt log-probabilities.

    scorer = LabelProbabilityScorer(backend.model, backend.tokenizer)
    scorer.score([(prompt_text, completion_text, ["A", "B"])])  # -> [[0.31, 0.69]]
"""

from __future__ import annotations

import re
from typing import Any, Optional, Sequence

import torch

from fem_cli.backends.prefix import PrefixEncoder, shared_prefix_length
from fem_cli.prompts import prompt_token_ids

_MARKER = re.compile(r"\banswer\s*:", re.IGNORECASE)
# What a model writes between the marker and the label itself: spaces, emphasis, a bracket.
_BEFORE_LABEL = re.compile(r"[\s*(\[]*")


def answer_context(completion: str) -> tuple[str, str]:
    """(completion up to where the label goes, whitespace to put before each label)."""
    markers = list(_MARKER.finditer(completion))
    if not markers:
        return completion.rstrip() + "\nAnswer:", " "
    end = markers[-1].end()
    if not completion[end:].strip():  # cut off right after the marker: a label would follow a space
        return completion[:end], " "
    before = _BEFORE_LABEL.match(completion, end)
    context = completion[: before.end() if before else end]
    # Trailing whitespace belongs to the label's token in BPE vocabularies (" B"), as lm-eval
    # moves a context's trailing spaces to its continuation.
    stripped = context.rstrip()
    return stripped, context[len(stripped):]


def label_positions(tokenizer: Any, prompt: str, completion: str, labels: Sequence[str]) -> Optional[tuple[list[int], list[int]]]:
    """(context token ids up to the label, each label's token id read right after them), or
    None when no single token position tells the labels apart."""
    context, space = answer_context(completion)
    context_ids = prompt_token_ids(tokenizer, prompt + context)
    continuations = []
    for label in labels:
        whole = prompt_token_ids(tokenizer, prompt + context + space + label)
        if len(whole) > len(context_ids) and whole[: len(context_ids)] == context_ids:
            continuations.append(whole[len(context_ids):])
        else:  # the label merged into the context's last token: score its own tokens
            continuations.append(tokenizer.encode(space + label, add_special_tokens=False))
    # Tokens every label starts with (a lone space, the "1" of "10" and "11") are part of the
    # context: the labels part where their tokens first differ.
    shared = 0
    while all(len(c) > shared + 1 for c in continuations) and len({c[shared] for c in continuations}) == 1:
        shared += 1
    firsts = [c[shared] if len(c) > shared else -1 for c in continuations]
    if -1 in firsts or len(set(firsts)) != len(firsts):
        return None
    return context_ids + continuations[0][:shared], firsts


class LabelProbabilityScorer:
    """Normalized label probabilities at the answer position, batched over completions. The
    token prefix every item shares (system turn, worked example) is encoded once per call."""

    def __init__(self, model: Any, tokenizer: Any, batch_size: int = 8, encoder: PrefixEncoder | None = None) -> None:
        """`encoder`: one already built for `model` (the hf backend's), else a new one."""
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.encoder = encoder or PrefixEncoder(model, tokenizer.pad_token_id)

    @torch.inference_mode()
    def score(self, items: Sequence[tuple[str, str, Sequence[str]]]) -> list[Optional[list[float]]]:
        """For each (rendered prompt, completion, labels): the label distribution, or None when no
        single token position tells the labels apart."""
        requests = [label_positions(self.tokenizer, prompt, completion, labels) for prompt, completion, labels in items]
        results: list[Optional[list[float]]] = [None] * len(items)
        # Similar lengths share a batch: less padding.
        scored = sorted((i for i, request in enumerate(requests) if request is not None), key=lambda i: len(requests[i][0]))  # type: ignore[index]
        shared = shared_prefix_length([requests[i][0] for i in scored])  # type: ignore[index]
        prefix = self.encoder.encode_prefix(requests[scored[0]][0][:shared] if scored else [])  # type: ignore[index]
        for start in range(0, len(scored), self.batch_size):
            batch = scored[start : start + self.batch_size]
            rests = [requests[i][0][shared:] for i in batch]  # type: ignore[index]
            _, _, logits = self.encoder.encode_rests(prefix, rests)
            logprobs = torch.log_softmax(logits, dim=-1)
            for row, index in enumerate(batch):
                firsts = torch.tensor(requests[index][1])  # type: ignore[index]
                results[index] = torch.softmax(logprobs[row, firsts], dim=-1).tolist()
        return results
