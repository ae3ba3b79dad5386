"""What every sampler shares: one draw of `n` completions per question, scored against the gold.

A sampler is a proposal q(z | x, y*): it decides which prompts (hinted or not) to draw from and
how many times. `Proposal.draw` turns questions into scored `Sample` records; rewards use the same
answer extraction as `fem filter` and `fem evaluate`. With `permute_choices`, every draw shows its
question's choices in its own seeded order (labels in place, contents moved, the gold following its
content), so hinted golds spread over all labels and training cannot reward one favourite label.
A proposal that writes instead (`write`: the task's worked solution, the reference sampler) makes
the same records, scored the same way, with no backend and no model.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable, Sequence

from fem_cli.answers import consistency, reward
from fem_cli.backends.base import Completion, GenerationBackend, GenerationRequest, SamplingSettings
from fem_cli.checkpoint import Checkpoint, batch_key
from fem_cli.prompts import PromptTemplate, build_messages, hint_text
from fem_cli.records import GenerationSettings, Question, Sample
from fem_cli.seeding import derive_seed
from fem_cli.tasks.rotation import permuted, random_order


# The stages whose prompt carries the correct answer (STaR's rationalization, PPS).
HINTED_STAGES = ("rationalized", "hinted")


@dataclasses.dataclass
class StageStats:
    """Counters for one (sampler, stage): what `<out>.summary.json` reports."""

    question_ids: set[str] = dataclasses.field(default_factory=set)
    solved_ids: set[str] = dataclasses.field(default_factory=set)
    samples: int = 0
    accepted: int = 0
    # Of the accepted samples: working that reaches the gold, and working that reaches another choice.
    consistent: int = 0
    inconsistent: int = 0
    tokens: int = 0
    seconds: float = 0.0
    # False for written samples (reference solutions): no tokens, so no length or speed either.
    generated: bool = True

    def add(self, sample: Sample) -> None:
        self.question_ids.add(sample.question_id)
        if sample.reward:
            self.solved_ids.add(sample.question_id)
        self.samples += 1
        self.accepted += int(sample.reward)
        if sample.reward:
            self.consistent += sample.consistent is True
            self.inconsistent += sample.consistent is False
        self.tokens += sample.num_tokens

    def summary(self) -> dict[str, float | int | None]:
        return {
            "questions": len(self.question_ids),
            "questions_with_correct": len(self.solved_ids),
            "samples": self.samples,
            "accepted": self.accepted,
            "acceptance_rate": self.accepted / self.samples if self.samples else 0.0,
            "consistent": self.consistent,
            "inconsistent": self.inconsistent,
            # The rest of the accepted samples name no choice in their working (consistent: null).
            "consistent_share": self.consistent / self.accepted if self.accepted else 0.0,
            "mean_rationale_tokens": (self.tokens / self.samples if self.samples else 0.0) if self.generated else None,
            "tokens_generated": self.tokens,
            "tokens_per_second": (self.tokens / self.seconds if self.seconds else 0.0) if self.generated else None,
            "wall_seconds": round(self.seconds, 3),
        }


@dataclasses.dataclass(kw_only=True)
class Proposal:
    """Everything a sampler needs to draw: the backend, settings, prompts and seeds; or, for a
    proposal that writes its completions, `write` instead of a backend."""

    backend: GenerationBackend | None = None
    settings: SamplingSettings = SamplingSettings()  # n is set per draw
    template: PromptTemplate
    sampler: str
    model: str
    seed: int
    generation: GenerationSettings | None  # None: written, not generated
    # The completion for a question as shown (the task's reference solution): set, the proposal
    # writes instead of generating, so it has no backend.
    write: Callable[[Question], str] | None = None
    # (stage, questions done, questions in this draw, tokens generated in this draw)
    on_progress: Callable[[str, int, int, int], None] | None = None
    # The prompt style of the questions: choice or judge (see fem_cli.prompts).
    style: str = "choice"
    # Questions per batch saved to `checkpoint` (0: one batch), so a rerun resumes after the last.
    checkpoint_every: int = 0
    checkpoint: Checkpoint | None = None
    # Each draw sees the choices in its own seeded order (see the module docstring).
    permute_choices: bool = False
    stats: dict[str, StageStats] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if (self.backend is None) == (self.write is None):
            raise ValueError("a proposal either generates (a backend) or writes (write), not both or neither")

    def _stats(self, stage: str) -> StageStats:
        return self.stats.setdefault(stage, StageStats(generated=self.write is None))

    def _shown(self, question: Question, stage: str, n: int, offset: int) -> list[tuple[int, Question, list[int] | None]]:
        """(first sample index, question as shown, its choice order) per request: one request of
        n draws in the question's order, or one request per draw in that draw's seeded order."""
        if not self.permute_choices:
            return [(offset, question, None)]
        shown = []
        for index in range(offset, offset + n):
            order = random_order(len(question.choices), derive_seed(self.seed, question.id, stage, index, "choice-order"))
            shown.append((index, permuted(question, order), order))
        return shown

    def draw(self, questions: Sequence[Question], stage: str, n: int, offset: int = 0) -> dict[str, list[Sample]]:
        """n samples for each question, from the hinted prompt in a hinted stage; `offset`
        counts the draws a question already had in this stage (sample indices and seeds go on).
        Questions go in batches of `checkpoint_every`, each read back from the checkpoint when
        an interrupted run already finished it."""
        drawn: dict[str, list[Sample]] = {}
        size = self.checkpoint_every or len(questions) or 1
        tokens_before = 0
        for start in range(0, len(questions), size):
            batch = questions[start : start + size]
            key = batch_key(self.sampler, stage, n, offset, ids=[q.id for q in batch])
            samples = self.checkpoint.load(key, Sample) if self.checkpoint else None
            if samples is None:
                samples = self._generate(batch, stage, n, offset, start, len(questions), tokens_before)
                if self.checkpoint:
                    self.checkpoint.save(key, samples)
            stats = self._stats(stage)
            for sample in samples:
                drawn.setdefault(sample.question_id, []).append(sample)
                stats.add(sample)
            tokens_before += sum(sample.num_tokens for sample in samples)
            if self.on_progress:
                self.on_progress(stage, start + len(batch), len(questions), tokens_before)
        return drawn

    def _generate(
        self, questions: Sequence[Question], stage: str, n: int, offset: int, done_before: int, total: int, tokens_before: int
    ) -> list[Sample]:
        hinted = stage in HINTED_STAGES
        per_request = 1 if self.permute_choices else n
        shown = [(question, *view) for question in questions for view in self._shown(question, stage, n, offset)]
        requests = [
            GenerationRequest(
                messages=build_messages(view, self.template, hint=hinted, style=self.style),
                seed=derive_seed(self.seed, question.id, stage, first),
            )
            for question, first, view, _ in shown
        ]
        started = time.perf_counter()
        if self.write is not None:
            write = self.write
            completions = [[Completion(text=write(view), num_tokens=0, finish_reason="stop")] for _, _, view, _ in shown]
        else:
            assert self.backend is not None  # __post_init__: no `write`, so a backend
            settings = dataclasses.replace(self.settings, n=per_request)
            report = self.on_progress
            completions = self.backend.generate(
                requests, settings,
                on_progress=(lambda done, tokens: report(stage, done_before + done, total, tokens_before + tokens)) if report else None,
            )
        self._stats(stage).seconds += time.perf_counter() - started
        samples = []
        for (question, first, view, order), request, outputs in zip(shown, requests, completions):
            train_prompt = build_messages(view, self.template, hint=False, style=self.style)
            for index, completion in enumerate(outputs):
                answer, score = reward(completion.text, view.labels, view.choices, view.answer)
                samples.append(
                    Sample(
                        question_id=question.id,
                        sampler=self.sampler,
                        stage=stage,
                        hinted=hinted,
                        sample_index=first + index,
                        prompt=list(request.messages),
                        train_prompt=train_prompt,
                        hint=hint_text(view, self.template, self.style) if hinted else None,
                        text=completion.text,
                        num_tokens=completion.num_tokens,
                        finish_reason=completion.finish_reason,
                        labels=view.labels,
                        choices=view.choices,
                        gold=view.answer,
                        extracted=answer.label,
                        extraction=answer.extraction,
                        consistent=consistency(completion.text, view.labels, view.choices),
                        reward=score,
                        model=self.model,
                        generation=self.generation,
                        seed=request.seed,
                        choice_order=order,
                    )
                )
        return samples
