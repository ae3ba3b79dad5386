"""`EvaluateConfig`: every option of `fem evaluate`, documented once and validated on creation.

    cfg = EvaluateConfig(model="smollm2", task="arc_easy,openbookqa", protocol="loglik", out="eval/base")
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Optional

from fem_cli.config import did_you_mean, option
from fem_cli.lengths import check_on_long
from fem_cli.prompts import PromptTemplate, check_style
from fem_cli.backends import BackendSettings
from fem_cli.tasks import QuestionSource, get_task, loglik_format
from fem_cli.tasks.registry import TASKS

PROTOCOLS = ("generative", "loglik")
# Sampling temperature of `--num-samples k > 1` when --temperature is not given.
DEFAULT_VOTE_TEMPERATURE = 0.7


@dataclasses.dataclass
class EvaluateConfig(BackendSettings, QuestionSource):
    """`fem evaluate`'s options: the question source and backend parts (their fields, flat), and its own."""

    task: str = option("", "Comma-separated tasks: names (`fem tasks`, e.g. mmlu:anatomy) or paths to question files.")
    batch_size: int = option(16, "hf backend: sequences decoded together; loglik: questions per forward pass (their choices share the context).")
    model: str = option("smollm2", "Model: an alias (`fem models list`), a local folder (fem finetune output, LoRA adapter) or a hub id.")
    protocol: str = option("generative", "generative: rationale + `Answer: X` line, scored by its answer (on --backend); loglik: lm-evaluation-harness's multiple-choice log-likelihood (acc, acc_norm; always on transformers).")
    num_samples: int = option(1, "generative: answers per question; more than 1 takes the majority vote (ties: first answer drawn).")
    temperature: Optional[float] = option(None, f"generative: sampling temperature (default: 0, greedy, for one sample; {DEFAULT_VOTE_TEMPERATURE} with --num-samples > 1).")
    max_new_tokens: int = option(256, "generative: most tokens per answer.")
    bootstrap_resamples: int = option(1000, "Resamples of the 95 % percentile bootstrap interval of accuracy.")
    out: str = option("eval", "Output folder: results.json and one <task>.jsonl of per-question records.")
    rotations: int = option(1, "Circular evaluation: ask every question in K rotations of its choices (labels stay, contents move; ids <id>~rot<r>; a question with fewer choices in all of its own) and report circular accuracy and content consistency.")
    swap_augment: bool = option(False, "Two-choice (judge) tasks: circular evaluation with K = 2, each pair in both orders (ids <id>~swap).")
    prompt_style: str = option("auto", "generative: prompt style, choice or judge; auto: each task's own (files: choice).")
    prompt: PromptTemplate = option(PromptTemplate(), "generative: prompt template, as in training (recipe only).")
    on_long: str = option("skip", "A question whose prompt (+ max_new_tokens) exceeds the model's maximum length: skip (warn, and count it in results.json) or error.")
    checkpoint_every: int = option(64, "generative: save finished questions every N (in .<out>.partial/), so a rerun after an interruption resumes there; 0: no checkpoint.")

    def __post_init__(self) -> None:
        if not self.tasks:
            raise ValueError("--task is required (task names from `fem tasks` or files, comma-separated)")
        for name in self.tasks:
            check_task(name)
        stems = [task_file_stem(name) for name in self.tasks]
        if len(set(stems)) != len(stems):
            raise ValueError(f"task: two tasks would share an output file in {self.task!r}")
        check_style(self.prompt_style)
        check_on_long(self.on_long)
        if self.checkpoint_every < 0:
            raise ValueError(f"checkpoint_every must be >= 0, got {self.checkpoint_every}")
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"unknown protocol {self.protocol!r}{did_you_mean(self.protocol, list(PROTOCOLS))}; choose from {', '.join(PROTOCOLS)}")
        if self.num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {self.num_samples}")
        if self.protocol == "loglik":
            for name in self.tasks:
                loglik_format(name)  # a task without a loglik format is refused before any work
        if self.protocol == "loglik" and self.num_samples != 1:
            raise ValueError("num_samples applies to --protocol generative only (loglik scores every choice once)")
        if self.temperature is not None and self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if self.num_samples > 1 and self.sampling_temperature == 0:
            raise ValueError("num_samples > 1 needs temperature > 0: greedy samples are all the same answer")
        QuestionSource.__post_init__(self)
        BackendSettings.__post_init__(self)
        if self.swap_augment and self.rotations not in (1, 2):
            raise ValueError(f"--swap-augment is --rotations 2; it cannot go with --rotations {self.rotations}")
        for name in ("max_new_tokens", "bootstrap_resamples", "rotations"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")

    @property
    def tasks(self) -> list[str]:
        return [name.strip() for name in self.task.split(",") if name.strip()]

    @property
    def circular_rotations(self) -> int:
        """K of circular evaluation (1: each question once, as given)."""
        return 2 if self.swap_augment else self.rotations

    @property
    def sampling_temperature(self) -> float:
        if self.temperature is not None:
            return self.temperature
        return DEFAULT_VOTE_TEMPERATURE if self.num_samples > 1 else 0.0


def check_task(name: str) -> None:
    """Raise (FemError, with a did-you-mean) unless `name` is a known task or an existing path;
    the same precedence as `load_questions`: task names win over paths."""
    path = Path(name)
    if name.partition(":")[0] in TASKS or not (path.exists() or path.suffix or len(path.parts) > 1):
        get_task(name)
    elif not path.exists():
        raise ValueError(f"task {name}: no such file or folder")


def task_file_stem(name: str) -> str:
    """The per-question output file of a task, without `.jsonl`: `mmlu:anatomy` -> `mmlu_anatomy`,
    a path -> its stem (as `load_questions` names it)."""
    if name.partition(":")[0] in TASKS:
        return name.replace(":", "_")
    return Path(name).stem
