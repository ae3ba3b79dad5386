"""Per-iteration tables of runs: rich for the terminal, Markdown for report.md."""

from __future__ import annotations

from rich.table import Table

from fem_cli.evaluation.metrics import format_accuracy
from fem_cli.report.collect import IterationFigures


def _percent(value: float | None) -> str:
    return "" if value is None else f"{value:.1%}"


def eval_tasks(iterations: list[IterationFigures]) -> list[str]:
    return list(dict.fromkeys(task for figures in iterations for task in figures.accuracy))


def calibration_error(figures: IterationFigures, task: str) -> float | None:
    """The task's expected calibration error at this iteration (None: not evaluated, or an
    evaluation written before fem reported calibration)."""
    return figures.metrics.get(task, {}).get("calibration", {}).get("ece")


def _task_columns(f: IterationFigures, task: str, with_ece: bool) -> list[str]:
    entry = f.accuracy.get(task)
    cells = [format_accuracy(entry) if entry else ""]
    if with_ece:
        ece = calibration_error(f, task)
        cells.append("" if ece is None else f"{ece:.3f}")
    return cells


def rows(iterations: list[IterationFigures]) -> tuple[list[str], list[list[str]]]:
    tasks = eval_tasks(iterations)
    with_ece = {task: any(calibration_error(f, task) is not None for f in iterations) for task in tasks}
    task_header = [
        column
        for task in tasks
        for column in (f"{task} accuracy [95% CI]", *([f"{task} ECE"] if with_ece[task] else []))
    ]
    header = ["iteration", *task_header, "acceptance", "mean rationale tokens", "kept"]
    body = [
        [
            str(f.iteration),
            *(cell for task in tasks for cell in _task_columns(f, task, with_ece[task])),
            _percent(f.acceptance_rate),
            "" if f.mean_rationale_tokens is None else f"{f.mean_rationale_tokens:.1f}",
            "" if f.kept is None else str(f.kept),
        ]
        for f in iterations
    ]
    return header, body


def iterations_table(name: str, iterations: list[IterationFigures]) -> Table:
    header, body = rows(iterations)
    table = Table(title=name)
    for column in header:
        table.add_column(column, justify="left" if column == "iteration" else "right")
    for row in body:
        table.add_row(*row)
    return table


def markdown_table(iterations: list[IterationFigures]) -> str:
    header, body = rows(iterations)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines)
