"""`run_evaluate(cfg)`: evaluate one model on one or more tasks and write the results folder.

    cfg.out/
      <task>.jsonl   one EvalRecord per question (prompt, outputs, answers, prediction, gold, ...)
      results.json   metrics per task with 95 % bootstrap intervals, counts, timings, provenance;
                     written last, so a folder without it is an unfinished run

    run_evaluate(EvaluateConfig(model="smollm2", task="arc_easy", limit=50, out="eval/base"))
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

from fem_cli.errors import FemError
from fem_cli.evaluation.config import EvaluateConfig, task_file_stem
from fem_cli.evaluation.generative import GenerativeEvaluator
from fem_cli.jsonl import write_json, write_jsonl
from fem_cli.models import ResolvedModel, resolve_model
from fem_cli.provenance import provenance
from fem_cli.records import EvalRecord, Question
from fem_cli.tasks import LoadedQuestions, load_questions

RESULTS_FILE = "results.json"


class Evaluator(Protocol):
    settings: dict[str, Any]

    def evaluate(
        self, task: str, questions: Sequence[Question], on_progress: Callable[[int], None] | None = None
    ) -> tuple[list[EvalRecord], dict[str, Any]]: ...

    def close(self) -> None: ...


def _evaluator(cfg: EvaluateConfig, model: ResolvedModel) -> Evaluator:
    if cfg.protocol == "loglik":
        from fem_cli.evaluation.loglik import LoglikEvaluator  # lazy: imports torch

        return LoglikEvaluator.from_config(cfg, model)
    return GenerativeEvaluator.from_config(cfg, model)


def run_evaluate(
    cfg: EvaluateConfig,
    on_status: Callable[[str], None] = print,
    progress: Callable[[str, int, int], None] | None = None,
) -> Path:
    """Evaluate and write `cfg.out`; `progress(task, questions done, total)` is called as it goes."""
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise FemError(f"--out {out}: is a file; give a folder")
    # Every task is read before the model loads, so bad data fails in a second, not after minutes.
    loaded: list[LoadedQuestions] = [
        load_questions(name, cfg.split, data_dir=cfg.data_dir, limit=cfg.limit, shuffle=cfg.shuffle, seed=cfg.seed)
        for name in cfg.tasks
    ]
    for task in loaded:
        on_status(f"{task.task}: {len(task.questions)} questions from {task.source}")
    model = resolve_model(cfg.model)
    # A results.json left by an earlier run in this folder would mark this one finished too early.
    (out / RESULTS_FILE).unlink(missing_ok=True)
    evaluator = _evaluator(cfg, model)
    on_status(f"protocol: {cfg.protocol} on {evaluator.settings['engine']}; model: {cfg.model} -> {model.path}")
    started = time.perf_counter()
    tasks: dict[str, Any] = {}
    try:
        for name, task in zip(cfg.tasks, loaded):
            task_started = time.perf_counter()
            total = len(task.questions)
            report = (lambda done, task_name=task.task, total=total: progress(task_name, done, total)) if progress else None
            records, metrics = evaluator.evaluate(task.task, task.questions, report)
            file_name = f"{task_file_stem(name)}.jsonl"
            write_jsonl(out / file_name, records)
            tasks[task.task] = {
                "source": task.source,
                "file": file_name,
                "questions": total,
                "wall_seconds": round(time.perf_counter() - task_started, 3),
                "metrics": metrics,
            }
    finally:
        evaluator.close()
    write_json(
        out / RESULTS_FILE,
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
    return out
