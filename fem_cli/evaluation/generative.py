"""The `generative` protocol: the model writes a rationale and a final `Answer: X`, as in training.

Each question is put with the training prompt (`build_messages(q, template, hint=False)`, in the
task's prompt style), answered greedily once or sampled k times with a majority vote over the
parsed answers (`read_answer`; each record says how every answer was read: label or content). A question whose answers all fail to parse is wrong, with
confidence 0. Confidence is the normalized probability of the predicted label at the answer
position (averaged over the samples that voted for it) where the backend declares the
`label_probs` capability (hf and vLLM do), else the vote share.

    fem evaluate --model runs/it2/ckpt --task arc_challenge --num-samples 5 --out eval/it2
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Optional, Sequence

from pydantic import BaseModel, ConfigDict

from fem_cli.answers import consistency, read_answer
from fem_cli.backends.base import LABEL_PROBS, GenerationBackend, GenerationRequest, LabelQuery, SamplingSettings
from fem_cli.checkpoint import Checkpoint, batch_key
from fem_cli.evaluation.config import EvaluateConfig
from fem_cli.evaluation.metrics import accuracy_summary, majority_vote, subject_breakdown
from fem_cli.lengths import prompt_length
from fem_cli.models import ResolvedModel, load_tokenizer
from fem_cli.prompts import PromptTemplate, build_messages, render
from fem_cli.records import EvalRecord, Question
from fem_cli.seeding import derive_seed

LABEL_PROBABILITY = "label_probability"
VOTE_SHARE = "vote_share"


class EvaluatedQuestion(BaseModel):
    """A checkpointed question: its record and the token count of each sample (the metrics need
    them; EvalRecord does not keep them)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    record: EvalRecord
    tokens: list[int]


class GenerativeEvaluator:
    """Generates with any backend, scores with `read_answer` and summarizes a task."""

    def __init__(
        self,
        backend: GenerationBackend,
        tokenizer: Any,
        settings: SamplingSettings,
        template: PromptTemplate,
        seed: int,
        resamples: int,
        styles: Mapping[str, str] | None = None,
        checkpoint_every: int = 0,
    ) -> None:
        self.backend = backend
        # Questions per batch saved to `checkpoint` (set by run_evaluate); 0: one batch.
        self.checkpoint_every = checkpoint_every
        self.checkpoint: Checkpoint | None = None
        self.max_length = backend.max_length
        self.max_new_tokens = settings.max_new_tokens
        self.tokenizer = tokenizer  # renders the prompt text stored in each record
        self.sampling = settings
        self.template = template
        self.seed = seed
        self.resamples = resamples
        self.styles = dict(styles or {})  # task -> prompt style (default: choice)
        self.label_probs = LABEL_PROBS in backend.capabilities
        # Which confidence the records carry (results.json says it with the calibration).
        self.confidence_source = LABEL_PROBABILITY if self.label_probs else VOTE_SHARE
        self.settings: dict[str, Any] = {
            "engine": backend.name,
            "num_samples": settings.n,
            "temperature": settings.temperature,
            "max_new_tokens": settings.max_new_tokens,
        }

    @classmethod
    def from_config(cls, cfg: EvaluateConfig, model: ResolvedModel, styles: Mapping[str, str] | None = None) -> "GenerativeEvaluator":
        backend, _ = cfg.build_backend(model, cfg.seed)
        dtype, dtype_why = cfg.resolved_dtype()
        settings = SamplingSettings(n=cfg.num_samples, temperature=cfg.sampling_temperature, max_new_tokens=cfg.max_new_tokens)
        tokenizer = load_tokenizer(model, trust_remote_code=cfg.trust_remote_code)
        evaluator = cls(
            backend, tokenizer, settings, cfg.prompt, cfg.seed, cfg.bootstrap_resamples, styles,
            checkpoint_every=cfg.checkpoint_every,
        )
        evaluator.settings["dtype"] = {"resolved": dtype, "why": dtype_why}
        return evaluator

    def prompt_tokens(self, task: str) -> Callable[[Question], int]:
        """Tokens of a question's prompt, as the backend will see it."""
        style = self.styles.get(task, "choice")
        return lambda question: prompt_length(self.tokenizer, build_messages(question, self.template, hint=False, style=style))

    def evaluate(
        self, task: str, questions: Sequence[Question], on_progress: Callable[[int], None] | None = None
    ) -> tuple[list[EvalRecord], dict[str, Any]]:
        """Records and metrics of a task; questions go in batches of `checkpoint_every`, each
        read back from the checkpoint when an interrupted run already finished it."""
        records: list[EvalRecord] = []
        token_counts: list[int] = []
        size = self.checkpoint_every or len(questions) or 1
        for start in range(0, len(questions), size):
            batch = questions[start : start + size]
            key = batch_key("evaluate", task, ids=[question.id for question in batch])
            done = self.checkpoint.load(key, EvaluatedQuestion) if self.checkpoint else None
            if done is None:
                report = (lambda finished, start=start: on_progress(start + finished)) if on_progress else None
                done = self._evaluate_batch(task, batch, report)
                if self.checkpoint:
                    self.checkpoint.save(key, done)
            records += [item.record for item in done]
            token_counts += [count for item in done for count in item.tokens]
            if on_progress:
                on_progress(start + len(batch))
        return records, self.summarize(records, token_counts)

    def _evaluate_batch(
        self, task: str, questions: Sequence[Question], on_progress: Callable[[int], None] | None
    ) -> list[EvaluatedQuestion]:
        style = self.styles.get(task, "choice")
        messages = [build_messages(question, self.template, hint=False, style=style) for question in questions]
        requests = [
            GenerationRequest(messages=m, seed=derive_seed(self.seed, task, q.id)) for q, m in zip(questions, messages)
        ]
        report = (lambda done, _tokens: on_progress(done)) if on_progress else None
        completions = self.backend.generate(requests, self.sampling, on_progress=report)
        prompts = [render(self.tokenizer, prompt) for prompt in messages]
        distributions = self._label_distributions(questions, messages, completions)
        evaluated = []
        for question, prompt, samples, sample_probs in zip(questions, prompts, completions, distributions):
            answers = [read_answer(sample.text, question.labels, question.choices) for sample in samples]
            extracted = [answer.label for answer in answers]
            prediction, share = majority_vote(extracted)
            label_probs = _mean_distribution([p for p, a in zip(sample_probs, extracted) if a == prediction and p])
            if prediction is None:
                label_probs, confidence = None, 0.0
            elif label_probs is not None:
                confidence = label_probs[question.labels.index(prediction)]
            else:  # no label probabilities, or labels sharing a first token: the vote share is all there is
                confidence = share
            record = EvalRecord(
                task=task, question_id=question.id, protocol="generative",
                prompt=prompt, outputs=[sample.text for sample in samples],
                extracted=extracted, extraction=[answer.extraction for answer in answers],
                prediction=prediction, gold=question.answer,
                correct=prediction == question.answer, confidence=confidence, subject=question.subject,
                label_probs=label_probs, vote_share=share,
                consistent=[consistency(sample.text, question.labels, question.choices) for sample in samples],
            )
            evaluated.append(EvaluatedQuestion(record=record, tokens=[sample.num_tokens for sample in samples]))
        return evaluated

    def _label_distributions(
        self, questions: Sequence[Question], messages: Sequence[Sequence[Any]], completions: Sequence[Sequence[Any]]
    ) -> list[list[Optional[list[float]]]]:
        """Per question, per sample: the label distribution at its answer position (None each
        where the backend cannot read label probabilities)."""
        if not self.label_probs:
            return [[None] * len(samples) for samples in completions]
        queries = [
            LabelQuery(prompt, sample.text, question.labels)
            for question, prompt, samples in zip(questions, messages, completions)
            for sample in samples
        ]
        flat = iter(self.backend.label_probabilities(queries))
        return [[next(flat) for _ in samples] for samples in completions]

    def summarize(self, records: Sequence[EvalRecord], token_counts: Sequence[int]) -> dict[str, Any]:
        """Accuracy [95 % CI], share of samples without a parseable answer, mean generated tokens
        per sample (EvalRecord keeps no token counts, so they come from the completions)."""
        correct = [record.correct for record in records]
        answers = [answer for record in records for answer in record.extracted]
        metrics: dict[str, Any] = {
            "accuracy": accuracy_summary(correct, self.seed, self.resamples),
            "working_consistent_accuracy": accuracy_summary([correct_by_its_working(record) for record in records], self.seed, self.resamples),
            "parse_failure_rate": sum(answer is None for answer in answers) / len(answers),
            "mean_rationale_tokens": sum(token_counts) / len(token_counts),
        }
        metrics.update(subject_breakdown(correct, [record.subject for record in records]) or {})
        return metrics

    def close(self) -> None:
        self.backend.close()


def correct_by_its_working(record: EvalRecord) -> bool:
    """Correct, and every output that gave the prediction reached it by its working: an answer line
    that its own working contradicts, or that follows no working, does not count."""
    votes = [consistent for label, consistent in zip(record.extracted, record.consistent or []) if label == record.prediction]
    return record.correct and bool(votes) and all(consistent is True for consistent in votes)


def _mean_distribution(distributions: Sequence[Sequence[float]]) -> Optional[list[float]]:
    if not distributions:
        return None
    return [sum(column) / len(distributions) for column in zip(*distributions)]
