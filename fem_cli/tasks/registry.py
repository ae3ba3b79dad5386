"""The task registry: each benchmark is one declarative `TaskSpec`; adding a task is one entry.

A spec says everything about its task: what it is, where its data lives (normalized folder,
Hugging Face hub id and config), the converter that reads the hub's schema, its prompt style and
its `loglik` format (lm-eval's context and continuations); `fem_cli.tasks.sources` does the
loading. A spec with `subsets` also answers to `<name>:<subset>` (e.g. one MMLU subject). A task
that can write a worked solution for each of its questions declares it (`reference_solution`):
the reference sampler's text, the ceiling of any E-step.

    get_task("mmlu:abstract_algebra").hub_config  # -> "abstract_algebra"
"""

from __future__ import annotations

import dataclasses
from types import MappingProxyType
from typing import Callable, Mapping

from fem_cli.config import did_you_mean
from fem_cli.errors import FemError
from fem_cli.records import Question
from fem_cli.tasks import arith, converters, loglik_formats
from fem_cli.tasks.converters import Schema
from fem_cli.tasks.loglik_formats import LoglikFormat

MMLU_SUBJECTS: tuple[str, ...] = (
    "abstract_algebra", "anatomy", "astronomy", "business_ethics", "clinical_knowledge",
    "college_biology", "college_chemistry", "college_computer_science", "college_mathematics",
    "college_medicine", "college_physics", "computer_security", "conceptual_physics",
    "econometrics", "electrical_engineering", "elementary_mathematics", "formal_logic",
    "global_facts", "high_school_biology", "high_school_chemistry",
    "high_school_computer_science", "high_school_european_history", "high_school_geography",
    "high_school_government_and_politics", "high_school_macroeconomics",
    "high_school_mathematics", "high_school_microeconomics", "high_school_physics",
    "high_school_psychology", "high_school_statistics", "high_school_us_history",
    "high_school_world_history", "human_aging", "human_sexuality", "international_law",
    "jurisprudence", "logical_fallacies", "machine_learning", "management", "marketing",
    "medical_genetics", "miscellaneous", "moral_disputes", "moral_scenarios", "nutrition",
    "philosophy", "prehistory", "professional_accounting", "professional_law",
    "professional_medicine", "professional_psychology", "public_relations", "security_studies",
    "sociology", "us_foreign_policy", "virology", "world_religions",
)


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """One benchmark: its splits, provenance, the converter for its hub schema, how it is prompted."""

    name: str
    description: str
    splits: tuple[str, ...]
    licence: str
    hub_id: str
    hub_config: str
    # How hub rows become Questions (one of `fem_cli.tasks.converters`, or a new `Schema`).
    converter: Schema
    # Rows per split, where known (shown by `fem tasks`; not enforced on load).
    counts: Mapping[str, int] = dataclasses.field(default_factory=lambda: MappingProxyType({}))
    # Accepted as `<name>:<subset>`; each subset is a hub config and a `subject` of the rows.
    subsets: tuple[str, ...] = ()
    # Set on a subset spec: only rows with this subject are kept.
    subject: str | None = None
    # Built-in tasks made by code instead of read from files: split -> questions.
    generator: Callable[[str], list[Question]] | None = None
    # How its questions are put to the model: "choice" (lettered choices) or "judge" (which of
    # two responses is better); see fem_cli.prompts.
    prompt_style: str = "choice"
    # fem split -> the hub split holding its rows, where they differ (the converter then picks
    # this split's rows, e.g. tldr_comparisons' train = the hub's validation rows of valid2).
    hub_splits: Mapping[str, str] = dataclasses.field(default_factory=lambda: MappingProxyType({}))
    # The `loglik` protocol's context and continuations (see fem_cli.tasks.loglik_formats); None:
    # the task is evaluated generatively only, and asking for loglik is an error.
    loglik_format: LoglikFormat | None = None
    # The worked solution of one of its questions as shown (choices maybe reordered): working,
    # then the answer line; None: the task has no reference solutions (`fem sample --sampler
    # reference` refuses it).
    reference_solution: Callable[[Question], str] | None = None

    @property
    def where(self) -> str:
        """Where the data comes from, in words (for `fem tasks`)."""
        return "built in (generated, offline)" if self.generator else f"{self.hub_id} ({self.hub_config})"

    @property
    def folder(self) -> str:
        """The folder of the normalized layout (a subset reads its parent's files)."""
        return self.name.partition(":")[0]

    def subset(self, subset: str) -> "TaskSpec":
        if subset not in self.subsets:
            raise FemError(
                f"unknown {self.name} subset {subset!r}{did_you_mean(subset, list(self.subsets))}; "
                f"`fem tasks` lists the tasks"
            )
        return dataclasses.replace(
            self,
            name=f"{self.name}:{subset}",
            description=f"{self.description}, subject {subset} only",
            hub_config=subset,
            counts=MappingProxyType({}),
            subsets=(),
            subject=subset,
        )


_ARC_SPLITS = ("train", "validation", "test")

TASKS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in (
        TaskSpec(
            name="arc_easy",
            description="AI2 Reasoning Challenge, Easy set: grade-school science questions",
            splits=_ARC_SPLITS,
            counts=MappingProxyType({"train": 2251, "validation": 570, "test": 2376}),
            licence="CC BY-SA 4.0",
            hub_id="allenai/ai2_arc",
            hub_config="ARC-Easy",
            converter=converters.AI2_ARC,
            loglik_format=loglik_formats.question_answer,
        ),
        TaskSpec(
            name="arc_challenge",
            description="AI2 Reasoning Challenge, Challenge set: questions simple baselines get wrong",
            splits=_ARC_SPLITS,
            counts=MappingProxyType({"train": 1119, "validation": 299, "test": 1172}),
            licence="CC BY-SA 4.0",
            hub_id="allenai/ai2_arc",
            hub_config="ARC-Challenge",
            converter=converters.AI2_ARC,
            loglik_format=loglik_formats.question_answer,
        ),
        TaskSpec(
            name="openbookqa",
            description="OpenBookQA (main): elementary science questions needing one fact and common sense",
            splits=("train", "validation", "test"),
            counts=MappingProxyType({"train": 4957, "validation": 500, "test": 500}),
            licence="Apache-2.0",
            hub_id="allenai/openbookqa",
            hub_config="main",
            converter=converters.OPENBOOKQA,
            loglik_format=loglik_formats.question_stem,
        ),
        TaskSpec(
            name="mmlu",
            description="MMLU: 57 subjects from elementary mathematics to law",
            splits=("dev", "validation", "test"),
            counts=MappingProxyType({"dev": 285, "validation": 1531, "test": 14042}),
            licence="MIT",
            hub_id="cais/mmlu",
            hub_config="all",
            converter=converters.MMLU,
            loglik_format=loglik_formats.lettered_choices,
            subsets=MMLU_SUBJECTS,
        ),
        TaskSpec(
            name="tldr_comparisons",
            description="Summarize from feedback: which of two TL;DR summaries of a Reddit post the labeller preferred",
            splits=("train", "validation"),
            counts=MappingProxyType({"train": 1386, "validation": 385}),
            licence="Modified MIT (feedback data), CC BY 4.0 (Reddit posts)",
            hub_id="openai/summarize_from_feedback",
            hub_config="comparisons",
            converter=converters.SUMMARIZE_FROM_FEEDBACK,
            prompt_style="judge",
            # train = the original valid2 rows, validation = valid1: both in the hub's validation.
            hub_splits=MappingProxyType({"train": "validation", "validation": "validation"}),
        ),
        TaskSpec(
            name="judge_pairs",
            description="LLM-as-a-judge: which of two responses to an instruction humans (or experts) preferred; LLMBar, MT-Bench, PandaLM",
            splits=("train", "validation"),
            counts=MappingProxyType({"train": 1174, "validation": 287}),
            licence="MIT (LLMBar), CC BY 4.0 (MT-Bench), Apache-2.0 (PandaLM)",
            hub_id="lmsys/mt_bench_human_judgments",
            hub_config="default",
            converter=converters.MT_BENCH_HUMAN_JUDGMENTS,
            prompt_style="judge",
            # Only the MT-Bench part is on the hub; its human votes are split by prompt hash.
            hub_splits=MappingProxyType({"train": "human", "validation": "human"}),
        ),
        TaskSpec(
            name="arith",
            description="Multi-step arithmetic word problems, generated (the offline default; see fem_cli/tasks/arith.py)",
            splits=tuple(arith.SPLIT_SIZES),
            counts=MappingProxyType(dict(arith.SPLIT_SIZES)),
            licence="Apache-2.0 (fem)",
            hub_id="",
            hub_config="",
            converter=converters.NORMALIZED,
            generator=arith.generate,
            reference_solution=arith.solution,
        ),
        TaskSpec(
            name="arith_hard",
            description="Harder arithmetic word problems: three steps, larger numbers, multiplication (generated; see fem_cli/tasks/arith.py)",
            splits=tuple(arith.SPLIT_SIZES),
            counts=MappingProxyType(dict(arith.SPLIT_SIZES)),
            licence="Apache-2.0 (fem)",
            hub_id="",
            hub_config="",
            converter=converters.NORMALIZED,
            generator=arith.generate_hard,
            reference_solution=arith.solution_hard,
        ),
    )
}


def task_prompt_style(source: str, requested: str = "auto") -> str:
    """The prompt style for a task name or file: `requested` unless "auto", else the task's own
    (files: choice)."""
    if requested != "auto":
        return requested
    spec = TASKS.get(source.partition(":")[0])
    return spec.prompt_style if spec is not None else "choice"


def loglik_format(source: str) -> LoglikFormat:
    """The `loglik` format of a task name or file: the task's own (FemError if it has none), and
    for a file lm-eval's plain question-answer format (ARC's)."""
    spec = TASKS.get(source.partition(":")[0])
    if spec is None:
        return loglik_formats.question_answer
    if spec.loglik_format is None:
        raise FemError(
            f"task {spec.name} has no loglik format (its TaskSpec sets none): evaluate it with --protocol generative"
        )
    return spec.loglik_format


def reference_solutions(source: str) -> Callable[[Question], str]:
    """The reference solution writer of task `source`; FemError naming the tasks that have one
    when it has none (a question file never has)."""
    spec = TASKS.get(source.partition(":")[0])
    if spec is None or spec.reference_solution is None:
        having = ", ".join(name for name, task in TASKS.items() if task.reference_solution is not None)
        what = f"task {source!r}" if spec is not None else f"{source!r} (not a built-in task)"
        raise FemError(f"{what} has no reference solutions; tasks that have them: {having}")
    return spec.reference_solution


def list_tasks() -> list[TaskSpec]:
    return list(TASKS.values())


def get_task(name: str) -> TaskSpec:
    """The spec for `name` or `name:subset`; FemError with a did-you-mean otherwise."""
    base, colon, subset = name.partition(":")
    spec = TASKS.get(base)
    if spec is None:
        raise FemError(f"unknown task {name!r}{did_you_mean(base, list(TASKS))}; `fem tasks` lists the tasks")
    if not colon:
        return spec
    if not spec.subsets:
        raise FemError(f"task {base!r} has no subsets, so {name!r} is not a task")
    return spec.subset(subset)
