"""The reference run as the ceiling: each run group's accuracy as a share of the distance from the
base model to training on the task's reference solutions.

A loop with `sampler: reference` trains on the task's own worked solutions (fem_cli.samplers), the
best an E-step could hand the M-step; the report measures every group against it. For a group at
iteration k, on eval task t:

    share = (accuracy_k - base) / (reference_k - base)

`base` is the group's iteration-0 accuracy (the base model), `reference_k` the accuracy of the
reference group of the same model and training task at the same iteration (as many M-steps), each
a mean over the group's seeds. 0 %: no gain over the base model; 100 %: as much as training on
reference solutions; below 0 % or above 100 % both happen. A share needs the reference above the
base: where it is not, the cell says so with both figures, and no share is shown.

    cell = reference_share(group, comparison.groups, iteration=1, task="arith")  # "63%"
"""

from __future__ import annotations

from typing import Sequence

from fem_cli.report.compare import RunGroup

REFERENCE_SAMPLER = "reference"

CAPTION = (
    "Share of base→reference: (accuracy − base) / (reference − base), means over seeds, where base "
    "is the group's iteration 0 (the base model) and reference the run of the same model and task "
    "trained on the task's reference solutions (sampler reference), at the same iteration: 0% is "
    "no gain over the base model, 100% as much as training on correct worked solutions. Shown only "
    "where the reference is above the base; where it is not, the cell says so."
)


def has_reference(groups: Sequence[RunGroup]) -> bool:
    return any(_sampler(group) == REFERENCE_SAMPLER for group in groups)


def _sampler(group: RunGroup) -> str | None:
    return group.runs[0].config.get("sampler")


def reference_of(group: RunGroup, groups: Sequence[RunGroup]) -> RunGroup | None:
    """The reference group `group` is measured against: the first one given with the same model
    and training task (a reference group is its own)."""
    config = group.runs[0].config
    return next(
        (
            other for other in groups
            if _sampler(other) == REFERENCE_SAMPLER
            and (other.runs[0].config.get("model"), other.runs[0].config.get("task")) == (config.get("model"), config.get("task"))
        ),
        None,
    )


def mean_accuracy(group: RunGroup, iteration: int, task: str) -> float | None:
    values = [f.accuracy[task]["value"] for run in group.runs for f in run.figures
              if f.iteration == iteration and task in f.accuracy]
    return sum(values) / len(values) if values else None


def reference_share(group: RunGroup, groups: Sequence[RunGroup], iteration: int, task: str) -> str | None:
    """The cell of `group` at `iteration` on `task`: the share, or a plain statement where the
    reference is not above the base; None at iteration 0, without a reference group of its model
    and task, or where a figure is missing."""
    reference = reference_of(group, groups)
    if reference is None or iteration == 0:
        return None
    accuracy, base, ceiling = (mean_accuracy(group, iteration, task), mean_accuracy(group, 0, task),
                               mean_accuracy(reference, iteration, task))
    if accuracy is None or base is None or ceiling is None:
        return None
    if ceiling <= base:
        return f"none: reference {ceiling:.1%} ≤ base {base:.1%}"
    return f"{(accuracy - base) / (ceiling - base):.0%}"
