"""The `generative` protocol: the model writes a rationale and a final `Answer: X`, as in training.

Each question is put with the training prompt (`build_messages(q, template, hint=False)`), answered
greedily once or sampled k times with a majority vote over the parsed answers (`extract_answer`).
A question whose answers all fail to parse is wrong.

    fem evaluate --model runs/it2/ckpt --task arc_challenge --num-samples 5 --out eval/it2
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from fem_cli.answers import extract_answer
from fem_cli.backends import BackendOptions, create_backend
from fem_cli.backends.base import GenerationBackend, GenerationRequest, SamplingSettings
from fem_cli.evaluation.config import EvaluateConfig
from fem_cli.evaluation.metrics import accuracy_summary, majority_vote, subject_breakdown
from fem_cli.models import ResolvedModel, load_tokenizer
from fem_cli.prompts import PromptTemplate, build_messages, render
from fem_cli.records import EvalRecord, Question
from fem_cli.seeding import derive_seed


class GenerativeEvaluator:
    """Generates with any backend, scores with `extract_answer` and summarizes a task."""

    def __init__(
        self,
        backend: GenerationBackend,
        tokenizer: Any,
        settings: SamplingSettings,
        template: PromptTemplate,
        seed: int,
        resamples: int,
    ) -> None:
        self.backend = backend
        self.tokenizer = tokenizer  # renders the prompt text stored in each record
        self.sampling = settings
        self.template = template
        self.seed = seed
        self.resamples = resamples
        self.settings: dict[str, Any] = {
            "engine": backend.name,
            "num_samples": settings.n,
            "temperature": settings.temperature,
            "max_new_tokens": settings.max_new_tokens,
        }

    @classmethod
    def from_config(cls, cfg: EvaluateConfig, model: ResolvedModel) -> "GenerativeEvaluator":
        backend, _ = create_backend(
            cfg.backend,
            model,
            BackendOptions(
                batch_size=cfg.batch_size, dtype=cfg.dtype, threads=cfg.threads,
                tensor_parallel_size=cfg.tensor_parallel_size, max_model_len=cfg.max_model_len,
                seed=cfg.seed, trust_remote_code=cfg.trust_remote_code,
            ),
        )
        settings = SamplingSettings(n=cfg.num_samples, temperature=cfg.sampling_temperature, max_new_tokens=cfg.max_new_tokens)
        tokenizer = load_tokenizer(model, trust_remote_code=cfg.trust_remote_code)
        return cls(backend, tokenizer, settings, cfg.prompt, cfg.seed, cfg.bootstrap_resamples)

    def evaluate(
        self, task: str, questions: Sequence[Question], on_progress: Callable[[int], None] | None = None
    ) -> tuple[list[EvalRecord], dict[str, Any]]:
        messages = [build_messages(question, self.template, hint=False) for question in questions]
        requests = [
            GenerationRequest(messages=m, seed=derive_seed(self.seed, task, q.id)) for q, m in zip(questions, messages)
        ]
        report = (lambda done, _tokens: on_progress(done)) if on_progress else None
        completions = self.backend.generate(requests, self.sampling, on_progress=report)
        records, token_counts = [], []
        for question, prompt, samples in zip(questions, messages, completions):
            extracted = [extract_answer(sample.text, question.labels, question.choices) for sample in samples]
            prediction, share = majority_vote(extracted)
            records.append(
                EvalRecord(
                    task=task, question_id=question.id, protocol="generative",
                    prompt=render(self.tokenizer, prompt), outputs=[sample.text for sample in samples],
                    extracted=extracted, prediction=prediction, gold=question.answer,
                    correct=prediction == question.answer, confidence=share, subject=question.subject,
                )
            )
            token_counts.extend(sample.num_tokens for sample in samples)
        return records, self.summarize(records, token_counts)

    def summarize(self, records: Sequence[EvalRecord], token_counts: Sequence[int]) -> dict[str, Any]:
        """Accuracy [95 % CI], share of samples without a parseable answer, mean generated tokens
        per sample (EvalRecord keeps no token counts, so they come from the completions)."""
        correct = [record.correct for record in records]
        answers = [answer for record in records for answer in record.extracted]
        metrics: dict[str, Any] = {
            "accuracy": accuracy_summary(correct, self.seed, self.resamples),
            "parse_failure_rate": sum(answer is None for answer in answers) / len(answers),
            "mean_rationale_tokens": sum(token_counts) / len(token_counts),
        }
        metrics.update(subject_breakdown(correct, [record.subject for record in records]) or {})
        return metrics

    def close(self) -> None:
        self.backend.close()
