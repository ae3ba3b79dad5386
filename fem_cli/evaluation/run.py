"""`run_evaluate(cfg)`: evaluate one model on one or more tasks and write the results folder.

    cfg.out/
      <task>.jsonl            one EvalRecord per question (prompt, outputs, answers, prediction, gold, ...)
      <task>.reliability.png  the task's reliability diagram (accuracy against confidence, 15 bins)
      results.json            metrics per task with 95 % bootstrap intervals, calibration (ECE, Brier),
                              the answer and gold distributions, the constant baseline, circular
                              accuracy and content consistency under --rotations K (--swap-augment:
                              K = 2), counts, timings, provenance; written last, so a folder without
                              it is an unfinished run

    run_evaluate(EvaluateConfig(model="smollm2", task="arc_easy", limit=50, out="eval/base"))
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol, Sequence

from fem_cli.checkpoint import Checkpoint, fingerprint
from fem_cli.errors import FemError
from fem_cli.evaluation.config import EvaluateConfig, task_file_stem
from fem_cli.evaluation.generative import VOTE_SHARE, GenerativeEvaluator
from fem_cli.evaluation.circular import LOGLIK_NO_OP, loglik_rotation_is_no_op, present, prior_metrics
from fem_cli.evaluation.metrics import calibration_summary, softmax
from fem_cli.evaluation.reliability import write_reliability_diagram
from fem_cli.jsonl import write_json, write_jsonl
from fem_cli.lengths import split_too_long
from fem_cli.models import ResolvedModel, resolve_model
from fem_cli.outputs import check_writable
from fem_cli.provenance import provenance
from fem_cli.records import EvalRecord, Question
from fem_cli.runs import results_path
from fem_cli.tasks import LoadedQuestions, task_prompt_style
from fem_cli.tasks.swap import check_two_choices


class Evaluator(Protocol):
    settings: dict[str, Any]
    max_length: int | None  # most tokens a question may take (None: the model does not say)
    max_new_tokens: int
    # Which confidence the records carry (results.json says it with the calibration).
    confidence_source: str

    def prompt_tokens(self, task: str) -> Callable[[Question], int]: ...

    def evaluate(
        self, task: str, questions: Sequence[Question], on_progress: Callable[[int], None] | None = None
    ) -> tuple[list[EvalRecord], dict[str, Any]]: ...

    def close(self) -> None: ...


def _evaluator(cfg: EvaluateConfig, model: ResolvedModel, styles: Mapping[str, str]) -> Evaluator:
    if cfg.protocol == "loglik":
        from fem_cli.evaluation.loglik import LoglikEvaluator  # lazy: imports torch

        return LoglikEvaluator.from_config(cfg, model)
    return GenerativeEvaluator.from_config(cfg, model, styles)


def calibration_metrics(records: Sequence[EvalRecord], questions: Sequence[Question], source: str) -> dict[str, Any]:
    """`calibration` of one task (and `calibration_vote_share` when k > 1 samples voted): ECE,
    Brier, bins. The multi-class Brier uses the label distribution where every record has one."""
    gold = [question.labels.index(question.answer) for question in questions]
    correct = [record.correct for record in records]
    confidences = [record.confidence or 0.0 for record in records]
    distributions: list[Any] | None = None
    if all(record.loglik is not None for record in records):
        distributions = [softmax(record.loglik) for record in records]  # type: ignore[arg-type]
    elif source != VOTE_SHARE and all(r.label_probs is not None for r in records if r.prediction is not None):
        distributions = [record.label_probs for record in records]
    metrics = {"calibration": calibration_summary(confidences, correct, source, distributions, gold)}
    voted = any(record.protocol == "generative" and len(record.outputs) > 1 for record in records)
    if voted and source != VOTE_SHARE:
        shares = [record.vote_share or 0.0 for record in records]
        metrics["calibration_vote_share"] = calibration_summary(shares, correct, VOTE_SHARE)
    return metrics


def run_evaluate(
    cfg: EvaluateConfig,
    on_status: Callable[[str], None] = print,
    progress: Callable[[str, int, int], None] | None = None,
) -> Path:
    """Evaluate and write `cfg.out`; `progress(task, questions done, total)` is called as it goes."""
    out = Path(cfg.out)
    check_writable(out, kind="folder")
    # Every task is read before the model loads, so bad data fails in a second, not after minutes.
    loaded: list[LoadedQuestions] = [cfg.load(name) for name in cfg.tasks]
    k = cfg.circular_rotations
    if cfg.swap_augment:
        for task in loaded:
            for question in task.questions:
                check_two_choices(question)
    # Where a rotation cannot change a loglik score, each question is scored once (and results.json says so).
    no_op = {task.task: k > 1 and cfg.protocol == "loglik" and loglik_rotation_is_no_op(name, task.questions)
             for name, task in zip(cfg.tasks, loaded)}
    styles = {task.task: task_prompt_style(name, cfg.prompt_style) for name, task in zip(cfg.tasks, loaded)}
    for task in loaded:
        turns = f" (each in {k} rotations of its choices)" if k > 1 and not no_op[task.task] else ""
        style = f"; prompt style {styles[task.task]}" if cfg.protocol == "generative" else ""
        on_status(f"{task.task}: {len(task.questions)} questions{turns} from {task.source}{style}")
    model = resolve_model(cfg.model)
    # A results.json left by an earlier run in this folder would mark this one finished too early.
    results_path(out).unlink(missing_ok=True)
    evaluator = _evaluator(cfg, model, styles)
    checkpoint = Checkpoint.open(
        out, fingerprint(cfg, [task.path for task in loaded if task.path], model.adapter or model.path), on_status,
        enabled=cfg.checkpoint_every > 0 and isinstance(evaluator, GenerativeEvaluator),
    )
    if isinstance(evaluator, GenerativeEvaluator):  # loglik is one forward pass per batch: nothing to save
        evaluator.checkpoint = checkpoint
    on_status(f"protocol: {cfg.protocol} on {evaluator.settings['engine']}; model: {cfg.model} -> {model.path}")
    started = time.perf_counter()
    tasks: dict[str, Any] = {}
    try:
        for name, task in zip(cfg.tasks, loaded):
            task_started = time.perf_counter()
            rotations = 1 if no_op[task.task] else k
            prompt_tokens = evaluator.prompt_tokens(task.task)
            kept, skipped = split_too_long(
                task.questions,
                # Every rotation must fit: circular accuracy needs all K answers of a question.
                lambda question: max(prompt_tokens(p.question) for p in present([question], rotations)),
                evaluator.max_length, evaluator.max_new_tokens, cfg.on_long, warn=on_status,
            )
            if not kept:
                raise FemError(f"{task.task}: every question is too long for the model's maximum length of {evaluator.max_length} tokens")
            # --limit counts questions: all K rotations of each of the first N.
            shown = present(kept, rotations)
            questions = [p.question for p in shown]
            total = len(questions)
            report = (lambda done, task_name=task.task, total=total: progress(task_name, done, total)) if progress else None
            records, metrics = evaluator.evaluate(task.task, questions, report)
            if k > 1:
                records = [r.model_copy(update={"choice_order": p.order}) for r, p in zip(records, shown)]
            metrics.update(calibration_metrics(records, questions, evaluator.confidence_source))
            metrics.update(prior_metrics(records, shown, cfg.seed, cfg.bootstrap_resamples))
            if no_op[task.task]:
                metrics.update({"rotations": k, "rotation_no_op": LOGLIK_NO_OP, "circular_accuracy": metrics["accuracy"]})
            file_name = f"{task_file_stem(name)}.jsonl"
            write_jsonl(out / file_name, records)
            diagram = write_reliability_diagram(
                out / f"{task_file_stem(name)}.reliability.png", task.task, metrics["calibration"]
            )
            tasks[task.task] = {
                "source": task.source,
                "file": file_name,
                "reliability_diagram": diagram.name,
                "questions": total,
                "skipped_too_long": len(skipped),
                "skipped_too_long_questions": skipped,
                "rotations": 1 if no_op[task.task] else k,
                "wall_seconds": round(time.perf_counter() - task_started, 3),
                "metrics": metrics,
            }
    finally:
        evaluator.close()
    if checkpoint.summary():
        on_status(checkpoint.summary())
    write_json(
        results_path(out),
        {
            "model": cfg.model,
            "model_path": model.path,
            "adapter": model.adapter,
            "protocol": cfg.protocol,
            "split": cfg.split,
            "seed": cfg.seed,
            "settings": evaluator.settings,
            "tasks": tasks,
            "wall_seconds": round(time.perf_counter() - started, 3),
            **provenance(cfg, inputs=[task.path for task in loaded if task.path]),
        },
    )
    checkpoint.finish()
    return out
