"""The EM loop's config, and the stage configs it derives for each iteration.

Top-level fields are shared by all stages (model, task, seed, ...); the sections `sample:`,
`filter:`, `finetune:` and `evaluate:` of a recipe hold any option of that stage's own command
(checked against that command's config, with a did-you-mean), so the loop never re-declares them.

    cfg = build_config(LoopConfig, recipe="recipes/demo.yaml")
    sample_cfg = stage_config(cfg, "sample", iteration=1, run_dir=Path("runs/demo"))
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any, Literal, Optional

from fem_cli.config import option, validate_config
from fem_cli.evaluation.config import EvaluateConfig
from fem_cli.filtering import FilterConfig
from fem_cli.prompts import PromptTemplate, check_style
from fem_cli.runs import stage_output
from fem_cli.sample import SampleConfig
from fem_cli.samplers import get_sampler
from fem_cli.train.config import FinetuneConfig

STAGE_CONFIGS: dict[str, type] = {
    "sample": SampleConfig,
    "filter": FilterConfig,
    "finetune": FinetuneConfig,
    "evaluate": EvaluateConfig,
}
# What the loop itself sets in each stage; a recipe section may not override these.
LOOP_OWNED = {
    "sample": {"model", "task", "split", "data_dir", "limit", "shuffle", "seed", "sampler", "out", "prompt", "prompt_style"},
    "filter": {"samples", "out"},
    "finetune": {"model", "train", "out", "init", "overwrite", "seed"},
    "evaluate": {"model", "task", "split", "data_dir", "limit", "seed", "out", "prompt", "prompt_style"},
}
# Options a resumed run may change without invalidating its finished stages.
RESUMABLE = {"iterations", "restart", "base_eval"}


@dataclasses.dataclass
class LoopConfig:
    name: str = option("", "Run name: the run folder is <runs-dir>/<name> (default: <model>-<task>-<sampler>).")
    runs_dir: str = option("runs", "Folder holding the run folders.")
    model: str = option("smollm2", "Base model: an alias (`fem models list`), a local folder or a hub id.")
    task: str = option("arith", "Task to learn from (its --train-split is sampled every iteration).")
    eval_tasks: str = option("", "Comma-separated tasks to evaluate on (default: --task).")
    train_split: str = option("train", "Split sampled in the E-step.")
    eval_split: str = option("validation", "Split evaluated after each M-step.")
    data_dir: Optional[str] = option(None, "Folder with the normalized layout DIR/<task>/<split>.jsonl (else $FEM_DATA_DIR, else the hub).")
    iterations: int = option(3, "EM iterations K (iteration 0 evaluates the base model). Raising it resumes a finished run.")
    train_limit: Optional[int] = option(None, "Questions sampled per iteration: a fresh shuffled subset each iteration (default: all).")
    eval_limit: Optional[int] = option(None, "Evaluate on the first N questions of each eval task.")
    seed: int = option(0, "Run seed; iteration k samples and trains with seed + k.")
    sampler: str = option("pps", "E-step proposal: rs, star or pps; reference: the task's own worked solutions (no model; the ceiling, arith and arith_hard).")
    init: Literal["base", "continue"] = option("base", "Each M-step starts from the base model (STaR's choice) or continues from the previous iteration's model.")
    restart: bool = option(False, "Delete an existing run folder of this name and start over.")
    base_eval: Optional[str] = option(None, "A finished `fem evaluate` folder of the base model, made with this run's iteration-0 config (e.g. another run's iter-0/eval in the same grid; another seed only for a greedy evaluation of unshuffled questions): copied as iteration 0 instead of evaluating again.")
    sample: dict[str, Any] = option({}, "Options of `fem sample` for every E-step (recipe only).")
    filter: dict[str, Any] = option({}, "Options of `fem filter` (recipe only).")
    finetune: dict[str, Any] = option({}, "Options of `fem finetune` (recipe only).")
    evaluate: dict[str, Any] = option({}, "Options of `fem evaluate` (recipe only).")
    prompt_style: str = option("auto", "Prompt style for sampling and evaluation: choice or judge; auto: each task's own (files: choice).")
    prompt: PromptTemplate = option(PromptTemplate(), "Prompt template for sampling and evaluation (recipe only).")

    def __post_init__(self) -> None:
        if self.iterations < 1:
            raise ValueError(f"iterations must be >= 1, got {self.iterations}")
        check_style(self.prompt_style)
        get_sampler(self.sampler)
        for stage, section in self.sections().items():
            owned = LOOP_OWNED[stage] & set(section)
            if owned:
                raise ValueError(f"{stage}: {', '.join(sorted(owned))} is set by the loop itself (use the top-level option)")
        if not self.name:
            self.name = re.sub(r"[^A-Za-z0-9._-]+", "-", f"{Path(self.model).name}-{self.task}-{self.sampler}").strip("-")

    def sections(self) -> dict[str, dict[str, Any]]:
        return {"sample": self.sample, "filter": self.filter, "finetune": self.finetune, "evaluate": self.evaluate}

    @property
    def run_dir(self) -> Path:
        return Path(self.runs_dir) / self.name


def model_of(cfg: LoopConfig, run_dir: Path, iteration: int) -> str:
    """The model after iteration k (k = 0: the base model)."""
    return cfg.model if iteration == 0 else str(stage_output(run_dir, iteration, "finetune"))


def stage_config(cfg: LoopConfig, stage: str, iteration: int, run_dir: Path) -> Any:
    """The full config of one stage of one iteration: the loop's settings + the recipe section."""
    seed = cfg.seed + iteration
    owned: dict[str, Any]
    if stage == "sample":
        owned = {"model": model_of(cfg, run_dir, iteration - 1), "task": cfg.task, "split": cfg.train_split,
                 "data_dir": cfg.data_dir, "limit": cfg.train_limit, "shuffle": cfg.train_limit is not None,
                 "seed": seed, "sampler": cfg.sampler, "prompt": cfg.prompt, "prompt_style": cfg.prompt_style}
    elif stage == "filter":
        owned = {"samples": [str(stage_output(run_dir, iteration, "sample"))]}
    elif stage == "finetune":
        start = cfg.model if cfg.init == "base" else model_of(cfg, run_dir, iteration - 1)
        owned = {"model": start, "train": stage_output(run_dir, iteration, "filter"), "init": cfg.init,
                 # A stage that was interrupted after its folder was renamed is simply redone.
                 "overwrite": True, "seed": seed}
    else:
        owned = {"model": model_of(cfg, run_dir, iteration), "task": cfg.eval_tasks or cfg.task,
                 "split": cfg.eval_split, "data_dir": cfg.data_dir, "limit": cfg.eval_limit,
                 "seed": cfg.seed, "prompt": cfg.prompt, "prompt_style": cfg.prompt_style}
    owned["out"] = stage_output(run_dir, iteration, stage)
    return validate_config(STAGE_CONFIGS[stage], {**cfg.sections()[stage], **owned}, f"loop {stage} section")
