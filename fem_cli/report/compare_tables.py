"""The comparison's tables: one row per run group and iteration (mean and spread over seeds, the
E-step's acceptance, verified share, rationale length and wall time; with a reference run among
the groups, each accuracy's share of base→reference, see fem_cli.report.ceiling), and one row per
paired test.
Each table is (header, body), rendered as Markdown for report.md and as rich for the terminal.
"""

from __future__ import annotations

from typing import Any, Sequence

from rich.table import Table

from fem_cli.report.ceiling import CAPTION as REFERENCE_CAPTION
from fem_cli.report.ceiling import has_reference, reference_share
from fem_cli.report.collect import IterationFigures
from fem_cli.report.compare import Comparison, PairedComparison, RunGroup
from fem_cli.report.stats import CONFIDENCE_LEVEL, SIGNIFICANCE_LEVEL, seed_spread

MISSING = "–"

GROUPS_CAPTION = (
    "Mean over seeds; ± is the standard deviation over seeds (shown from 2 seeds). "
    "Working-consistent accuracy: share of questions answered correctly by working that reaches "
    "the answer (– where not read). Acceptance: share of E-step draws with the gold answer; "
    "verified: share of accepted draws whose answer stands without the hint (– where the run does "
    "not record it); consistent: share of accepted draws whose working reaches their answer (– in "
    "older runs); times are per iteration, mean over seeds."
)


def groups_caption(groups: Sequence[RunGroup]) -> str:
    return GROUPS_CAPTION + (" " + REFERENCE_CAPTION if has_reference(groups) else "")


def comparison_caption(comparisons: Sequence[PairedComparison]) -> str:
    level = f"{CONFIDENCE_LEVEL:.0%}"
    return (
        f"A − B in accuracy, pooled over the seeds both have, questions matched by (seed, task, "
        f"question id). Interval: paired bootstrap {level} percentile interval resampling questions "
        f"(unadjusted). p: exact McNemar test (sign test over questions: where A scored higher "
        f"against where B did; with one seed, the discordant pairs). Holm: p adjusted by Holm's "
        f"method over all {len(comparisons)} tests in this table; significant: Holm p < "
        f"{SIGNIFICANCE_LEVEL}. Iteration 0 is left out where both evaluated the same base model "
        f"with identical answers."
    )


def gains_caption(gains: Sequence[PairedComparison]) -> str:
    level = f"{CONFIDENCE_LEVEL:.0%}"
    return (
        f"Each group at a later iteration (A) against the base model its runs started from (B: their "
        f"iteration 0), pooled over the seeds, questions matched by (seed, task, question id). "
        f"Interval: paired bootstrap {level} percentile interval; p: exact McNemar test; Holm: over "
        f"all {len(gains)} tests in this table; significant: Holm p < {SIGNIFICANCE_LEVEL}."
    )


def _percent(value: float | None) -> str:
    return MISSING if value is None else f"{value:.1%}"


def _with_spread(values: list[float], percent: bool) -> str:
    if not values:
        return MISSING
    mean, spread = seed_spread(values)
    if percent:
        return f"{mean:.1%}" + ("" if spread is None else f" ± {spread * 100:.1f}")
    return f"{mean:.1f}" + ("" if spread is None else f" ± {spread:.1f}")


def _minutes(values: list[float]) -> str:
    return MISSING if not values else f"{sum(values) / len(values) / 60:.1f} min"


def _working(figures: IterationFigures, task: str) -> float | None:
    """The share of questions answered correctly by working that reaches the answer (None: not read)."""
    summary = figures.metrics.get(task, {}).get("working_consistent_accuracy")
    return None if summary is None else summary["value"]


def group_rows(groups: Sequence[RunGroup]) -> tuple[list[str], list[list[str]]]:
    tasks = list(dict.fromkeys(t for g in groups for run in g.runs for f in run.figures for t in f.accuracy))
    # With a reference run among them, each accuracy also as a share of base -> reference.
    shared = tasks if has_reference(groups) else []
    working = [task for task in tasks if any(_working(f, task) is not None for g in groups for run in g.runs for f in run.figures)]
    header = ["run", "seeds", "iteration", *(f"{task} accuracy" for task in tasks),
              *(f"{task} working-consistent accuracy" for task in working),
              *(f"{task} share of base→reference" for task in shared), "acceptance", "verified",
              "consistent", "rationale tokens", "sample time", "iteration time"]
    body = []
    for group in groups:
        iterations = sorted({f.iteration for run in group.runs for f in run.figures})
        for k in iterations:
            figures = [f for run in group.runs for f in run.figures if f.iteration == k]
            accuracies = [[f.accuracy[task]["value"] for f in figures if task in f.accuracy] for task in tasks]
            body.append([
                group.label,
                " ".join(map(str, group.seeds)),
                str(k),
                *(_with_spread(values, percent=True) for values in accuracies),
                *(_with_spread([_working(f, task) for f in figures if _working(f, task) is not None], percent=True) for task in working),
                *(reference_share(group, groups, k, task) or MISSING for task in shared),
                _with_spread([f.acceptance_rate for f in figures if f.acceptance_rate is not None], percent=True),
                _with_spread([f.verified_share for f in figures if f.verified_share is not None], percent=True),
                _with_spread([f.consistent_share for f in figures if f.consistent_share is not None], percent=True),
                _with_spread([f.mean_rationale_tokens for f in figures if f.mean_rationale_tokens is not None], percent=False),
                _minutes([run.sample_seconds[k] for run in group.runs if k in run.sample_seconds]),
                _minutes([run.iteration_seconds[k] for run in group.runs if k in run.iteration_seconds]),
            ])
    return header, body


def comparison_rows(comparisons: Sequence[PairedComparison]) -> tuple[list[str], list[list[str]]]:
    header = ["task", "iteration", "A", "B", "seeds", "questions", "accuracy A", "accuracy B",
              f"A − B [{CONFIDENCE_LEVEL:.0%} CI]", "A better / B better", "p (McNemar)", "p (Holm)", "significant"]
    body = [
        [
            c.task, str(c.iteration), c.a, c.b, " ".join(map(str, c.seeds)), str(c.questions),
            _percent(c.accuracy_a), _percent(c.accuracy_b),
            f"{c.difference * 100:+.1f} pts [{c.ci_low * 100:+.1f}, {c.ci_high * 100:+.1f}]",
            f"{c.a_better} / {c.b_better}", f"{c.p_value:.3g}", f"{c.p_holm:.3g}",
            "yes" if c.significant else "no",
        ]
        for c in comparisons
    ]
    return header, body


def markdown(header: list[str], body: list[list[str]], caption: str) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines) + f"\n\n{caption}"


def rich_table(title: str, header: list[str], body: list[list[str]], caption: str) -> Table:
    table = Table(title=title, caption=caption)
    for column in header:
        table.add_column(column, justify="left" if column in ("run", "task", "A", "B") else "right")
    for row in body:
        table.add_row(*row)
    return table


def comparison_json(comparison: Comparison) -> dict[str, Any]:
    """comparison.json: the groups (label, seeds, folders) and every test, for scripts and plots."""
    return {
        "groups": [{"label": g.label, "seeds": g.seeds, "runs": [str(run.folder) for run in g.runs]} for g in comparison.groups],
        "confidence_level": CONFIDENCE_LEVEL,
        "significance_level": SIGNIFICANCE_LEVEL,
        "correction": "holm",
        "comparisons": [{**vars(c), "significant": c.significant} for c in comparison.tests],
        "gains_over_base": [{**vars(g), "significant": g.significant} for g in comparison.gains],
    }


def comparison_sections(comparison: Comparison, groups: bool = True) -> list[str]:
    """The Markdown sections of report.md: the groups' table (with `groups`), each group's gain over
    its base model, then the paired tests between groups (where there are any)."""
    sections = []
    if groups:
        sections += ["## Runs grouped by seed", "", markdown(*group_rows(comparison.groups), groups_caption(comparison.groups)), ""]
    if comparison.gains:
        sections += ["## Gain over the base model", "", markdown(*comparison_rows(comparison.gains), gains_caption(comparison.gains)), ""]
    if comparison.tests:
        sections += ["## Paired comparison", "", markdown(*comparison_rows(comparison.tests), comparison_caption(comparison.tests)), ""]
    return sections
