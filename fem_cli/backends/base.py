"""The generation interface every backend honours, and the capabilities a backend declares.

Chat prompts + SamplingSettings -> for each prompt, `n` Completions (text, token count, finish
reason). Each request carries its own seed, so a prompt's samples do not depend on which other
prompts share its batch: sharded runs reproduce an unsharded one.

Beyond generating, a backend lists what else it can do in `capabilities`, and callers ask that set
instead of probing attributes:
  LABEL_PROBS  `label_probabilities(queries)`: the probability of each label at a completion's
               answer position, read on the prompt's token ids (generative confidence,
               `fem sample --verify`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional, Protocol, Sequence

from fem_cli.answers import answer_line_end
from fem_cli.errors import FemError
from fem_cli.records import Message


@dataclasses.dataclass(frozen=True)
class SamplingSettings:
    n: int = 1
    temperature: float = 0.7  # 0 = greedy
    top_p: float = 1.0
    max_new_tokens: int = 256
    stop: tuple[str, ...] = ()
    # Stop once a complete `Answer: X` line is written: everything after it is wasted compute.
    stop_at_answer: bool = True

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"n must be >= 1, got {self.n}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")


@dataclasses.dataclass(frozen=True)
class GenerationRequest:
    messages: Sequence[Message]
    seed: int


@dataclasses.dataclass(frozen=True)
class Completion:
    text: str
    num_tokens: int  # generated tokens, including any cut off after the answer line
    finish_reason: str  # "stop" (answer line, stop string or end of turn) or "length"


@dataclasses.dataclass(frozen=True)
class LabelQuery:
    """Read which label `completion` gives after `messages`: at its last `Answer:` marker (after an
    appended "\nAnswer:" when it has none)."""

    messages: Sequence[Message]
    completion: str
    labels: Sequence[str]


LABEL_PROBS = "label_probs"


# Called with (requests finished so far in this call, tokens generated so far in this call).
ProgressCallback = Callable[[int, int], None]


class GenerationBackend(Protocol):
    name: str
    tokenizer: Any  # renders and counts prompts exactly as generation will
    # Most tokens (prompt + completion) one sequence may have; None when the model does not say.
    max_length: int | None
    # What this backend can do besides generating (LABEL_PROBS, ...).
    capabilities: frozenset[str]

    def generate(
        self,
        requests: Sequence[GenerationRequest],
        settings: SamplingSettings,
        on_progress: ProgressCallback | None = None,
    ) -> list[list[Completion]]:
        """One list of `settings.n` completions per request, in request order."""
        ...

    def label_probabilities(self, queries: Sequence[LabelQuery]) -> list[Optional[list[float]]]:
        """LABEL_PROBS backends: per query, the label distribution at the answer position
        (normalized over the query's labels), or None when no single token position tells its
        labels apart. The prompt is rendered and tokenized as for `generate`."""
        ...

    def close(self) -> None: ...


def require(backend: GenerationBackend, capability: str, why: str) -> None:
    """FemError unless `backend` declares `capability`."""
    if capability not in backend.capabilities:
        raise FemError(f"{why} needs a backend with {capability}; the {backend.name} backend has not")


def finish_text(text: str, settings: SamplingSettings) -> tuple[str, bool]:
    """Cut `text` after the first stop string or complete answer line; (text, was it cut)."""
    cut = len(text)
    for stop in settings.stop:
        position = text.find(stop)
        if position != -1:
            cut = min(cut, position)
    if settings.stop_at_answer:
        end = answer_line_end(text)
        if end is not None:
            cut = min(cut, end)
    return text[:cut], cut < len(text)
