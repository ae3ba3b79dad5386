"""The E-step proposals q(z | x, y*), a small registry: a new proposal is one class.

- `rs`   rejection sampling with a budget: up to M draws per question from the model itself.
- `star` STaR: draws from the model; questions with no correct draw are rationalized (hinted).
- `pps`  prompt posterior sampling: every draw is hinted with the correct answer.
- `reference` the task's own worked solution, one per question, written without a model: not
  an EM proposal but the ceiling of any, what training on correct working reaches.

    samples = get_sampler("star").run(questions, proposal, SamplerOptions(num_samples=4))
"""

from __future__ import annotations

import dataclasses
from typing import Protocol, Sequence

from fem_cli.config import did_you_mean
from fem_cli.errors import FemError
from fem_cli.records import Question, Sample
from fem_cli.samplers.base import Proposal


@dataclasses.dataclass(frozen=True)
class SamplerOptions:
    num_samples: int = 4  # draws per question per round (rs), per stage (star, pps); not reference
    budget: int = 8  # rs: at most this many draws per question in all


class Sampler(Protocol):
    name: str
    description: str
    # The prompts it may send per question: un-hinted (False) and/or hinted (True); the longest
    # must fit in the model (see fem_cli.lengths).
    prompt_hints: tuple[bool, ...]
    # False: the sampler writes its samples (`Proposal.write`), so no model is loaded.
    needs_model: bool

    def run(self, questions: Sequence[Question], proposal: Proposal, options: SamplerOptions) -> list[Sample]: ...


def _in_question_order(questions: Sequence[Question], *draws: dict[str, list[Sample]]) -> list[Sample]:
    return [sample for q in questions for drawn in draws for sample in drawn.get(q.id, [])]


class RejectionSampling:
    name = "rs"
    prompt_hints = (False,)
    needs_model = True
    description = "up to --budget draws per question from the un-hinted prompt, in rounds of --num-samples, until one is correct"

    def run(self, questions: Sequence[Question], proposal: Proposal, options: SamplerOptions) -> list[Sample]:
        pending = list(questions)
        rounds: list[dict[str, list[Sample]]] = []
        drawn = 0
        while pending and drawn < options.budget:
            n = min(options.num_samples, options.budget - drawn)
            result = proposal.draw(pending, stage="self", n=n, offset=drawn)
            rounds.append(result)
            drawn += n
            pending = [q for q in pending if not any(s.reward for s in result[q.id])]
        return _in_question_order(questions, *rounds)


class STaR:
    name = "star"
    prompt_hints = (False, True)
    needs_model = True
    description = "--num-samples un-hinted draws; questions with none correct get --num-samples hinted draws (rationalization)"

    def run(self, questions: Sequence[Question], proposal: Proposal, options: SamplerOptions) -> list[Sample]:
        first = proposal.draw(questions, stage="self", n=options.num_samples)
        failed = [q for q in questions if not any(s.reward for s in first[q.id])]
        rationalized = proposal.draw(failed, stage="rationalized", n=options.num_samples)
        return _in_question_order(questions, first, rationalized)


class PromptPosteriorSampling:
    name = "pps"
    prompt_hints = (True,)
    needs_model = True
    description = "--num-samples draws per question, every prompt hinted with the correct answer"

    def run(self, questions: Sequence[Question], proposal: Proposal, options: SamplerOptions) -> list[Sample]:
        return _in_question_order(questions, proposal.draw(questions, stage="hinted", n=options.num_samples))


class ReferenceSolutions:
    name = "reference"
    prompt_hints = ()
    needs_model = False
    description = (
        "the task's own worked solution, one per question (--num-samples does not apply: copies would be "
        "duplicates, which fem filter drops), written without a model: the ceiling of any E-step"
    )

    def run(self, questions: Sequence[Question], proposal: Proposal, options: SamplerOptions) -> list[Sample]:
        return _in_question_order(questions, proposal.draw(questions, stage="reference", n=1))


SAMPLERS: dict[str, Sampler] = {
    s.name: s for s in (RejectionSampling(), STaR(), PromptPosteriorSampling(), ReferenceSolutions())
}


def get_sampler(name: str) -> Sampler:
    if name not in SAMPLERS:
        raise FemError(f"unknown sampler {name!r}{did_you_mean(name, list(SAMPLERS))}; choose from {', '.join(SAMPLERS)}")
    return SAMPLERS[name]
