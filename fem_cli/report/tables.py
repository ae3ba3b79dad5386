"""Per-iteration tables of runs: rich for the terminal, Markdown for report.md."""

from __future__ import annotations

from rich.table import Table

from fem_cli.evaluation.metrics import format_accuracy, label_collapse
from fem_cli.report.collect import IterationFigures


def _percent(value: float | None) -> str:
    return "" if value is None else f"{value:.1%}"


def eval_tasks(iterations: list[IterationFigures]) -> list[str]:
    return list(dict.fromkeys(task for figures in iterations for task in figures.accuracy))


def calibration_error(figures: IterationFigures, task: str) -> float | None:
    """The task's expected calibration error at this iteration (None: not evaluated, or an
    evaluation written before fem reported calibration)."""
    return figures.metrics.get(task, {}).get("calibration", {}).get("ece")


def constant_baseline(figures: IterationFigures, task: str) -> float | None:
    """The best accuracy of one constant answer on the evaluated questions (None: an evaluation
    written before fem reported it)."""
    return figures.metrics.get(task, {}).get("constant_baseline")


def circular_accuracy(figures: IterationFigures, task: str) -> dict[str, float] | None:
    """Correct in every rotation of the choices (None: not evaluated with rotations)."""
    return figures.metrics.get(task, {}).get("circular_accuracy")


def working_consistent_accuracy(figures: IterationFigures, task: str) -> dict[str, float] | None:
    """Correct with working that reaches the answer (None: loglik, or an older evaluation)."""
    return figures.metrics.get(task, {}).get("working_consistent_accuracy")


def collapse(figures: IterationFigures, task: str) -> str:
    """"collapse: C 197 of 200, golds 22 %" where one label takes far more of the answers than of
    the golds (`metrics.label_collapse`); "" where none does, or the evaluation has no counts."""
    metrics = figures.metrics.get(task, {})
    if "predictions" not in metrics or "gold" not in metrics:
        return ""
    found = label_collapse(metrics["predictions"], metrics["gold"])
    if found is None:
        return ""
    return f"collapse: {found.label} {found.count} of {found.n}, golds {found.gold_share * 100:.0f} %"


# (column title, cell of one task at one iteration, is the column shown for this task's figures)
_TASK_COLUMNS = (
    ("accuracy [95% CI]", lambda f, t: format_accuracy(f.accuracy.get(t)), lambda fs, t: True),
    ("constant baseline", lambda f, t: _percent(constant_baseline(f, t)),
     lambda fs, t: any(constant_baseline(f, t) is not None for f in fs)),
    ("circular accuracy [95% CI]", lambda f, t: format_accuracy(circular_accuracy(f, t)),
     lambda fs, t: any(circular_accuracy(f, t) is not None for f in fs)),
    ("working-consistent accuracy [95% CI]", lambda f, t: format_accuracy(working_consistent_accuracy(f, t)),
     lambda fs, t: any(working_consistent_accuracy(f, t) is not None for f in fs)),
    ("ECE", lambda f, t: "" if calibration_error(f, t) is None else f"{calibration_error(f, t):.3f}",
     lambda fs, t: any(calibration_error(f, t) is not None for f in fs)),
    ("answers", collapse, lambda fs, t: any(collapse(f, t) for f in fs)),
)


def rows(iterations: list[IterationFigures]) -> tuple[list[str], list[list[str]]]:
    tasks = eval_tasks(iterations)
    shown = [(task, title, cell) for task in tasks for title, cell, wanted in _TASK_COLUMNS if wanted(iterations, task)]
    verified = any(f.verified_share is not None for f in iterations)
    consistent = any(f.consistent_share is not None for f in iterations)
    header = ["iteration", *(f"{task} {title}" for task, title, _ in shown), "acceptance",
              *(["verified"] if verified else []), *(["consistent"] if consistent else []), "mean rationale tokens", "kept"]
    body = [
        [
            str(f.iteration),
            *(cell(f, task) for task, _, cell in shown),
            _percent(f.acceptance_rate),
            *([_percent(f.verified_share)] if verified else []),
            *([_percent(f.consistent_share)] if consistent else []),
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
