"""Per-iteration tables of runs: rich for the terminal, Markdown for report.md."""

from __future__ import annotations

from rich.table import Table

from fem_cli.report.collect import IterationFigures


def _percent(value: float | None) -> str:
    return "" if value is None else f"{value:.1%}"


def _accuracy(entry: dict[str, float] | None) -> str:
    if not entry:
        return ""
    return f"{entry['value']:.1%} [{entry['ci_low']:.1%}, {entry['ci_high']:.1%}]"


def eval_tasks(iterations: list[IterationFigures]) -> list[str]:
    return list(dict.fromkeys(task for figures in iterations for task in figures.accuracy))


def rows(iterations: list[IterationFigures]) -> tuple[list[str], list[list[str]]]:
    tasks = eval_tasks(iterations)
    header = ["iteration", *(f"{task} accuracy [95% CI]" for task in tasks), "acceptance", "mean rationale tokens", "kept"]
    body = [
        [
            str(f.iteration),
            *(_accuracy(f.accuracy.get(task)) for task in tasks),
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
