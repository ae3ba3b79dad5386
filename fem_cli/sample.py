"""The E-step's first half: draw rationales from a proposal and write them, scored, as JSONL.

`run_sample(cfg)` loads the questions (optionally one shard of them), builds the backend, runs the
sampler (in permuted choice orders with --permute-choices), verifies the correct hinted samples
without the hint (--verify) and writes `cfg.out` (one `Sample` per line) and `<out>.summary.json`
(acceptance rate, verified share, rationale length, tokens/s per sampler and stage, plus provenance).
The reference sampler writes the task's worked solutions instead: no model is loaded, so the model
options and the length check do not apply.

    fem sample --model smollm2 --task arc_easy --split train --sampler pps --num-samples 4 --out samples.jsonl
    fem sample --task arith_hard --split train --limit 64 --sampler reference --out reference.jsonl
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Callable

from fem_cli.backends import BackendSettings, choose_backend
from fem_cli.backends.base import LABEL_PROBS, SamplingSettings, require
from fem_cli.checkpoint import Checkpoint, fingerprint
from fem_cli.config import option
from fem_cli.errors import FemError
from fem_cli.jsonl import write_json, write_jsonl
from fem_cli.lengths import check_on_long, prompt_length, split_too_long
from fem_cli.models import resolve_model
from fem_cli.outputs import check_writable
from fem_cli.prompts import PromptTemplate, build_messages, check_style
from fem_cli.provenance import provenance
from fem_cli.records import GenerationSettings, Question, Sample
from fem_cli.runs import summary_path
from fem_cli.samplers import Sampler, SamplerOptions, get_sampler
from fem_cli.samplers.base import Proposal, StageStats
from fem_cli.tasks import LoadedQuestions, QuestionSource, reference_solutions, task_prompt_style
from fem_cli.tasks.swap import swap_augment
from fem_cli.verification import verification_summary, verify


@dataclasses.dataclass
class SampleConfig(BackendSettings, QuestionSource):
    """`fem sample`'s options: the question source and backend parts (their fields, flat), and its own."""

    split: str = option("train", "Split of the task to sample on.")
    model: str = option("smollm2", "Model: an alias (`fem models list`), a local folder or a hub id.")
    shard: str = option("0/1", "Take shard i of n (i/n, 0-based): questions i, i+n, i+2n, ...")
    sampler: str = option("pps", "Proposal: rs (rejection sampling), star, pps (prompt posterior sampling); reference: the task's own worked solutions, one per question, no model loaded (arith, arith_hard).")
    num_samples: int = option(4, "Draws per question (per round for rs, per stage for star; reference writes one, as copies would be duplicates).")
    budget: int = option(8, "rs only: at most this many draws per question.")
    temperature: float = option(0.7, "Sampling temperature (0 = greedy).")
    top_p: float = option(1.0, "Nucleus sampling mass.")
    max_new_tokens: int = option(256, "Most tokens generated per sample.")
    out: str = option("samples.jsonl", "Output JSONL of samples; statistics go to <out>.summary.json.")
    swap_augment: bool = option(False, "Two-choice (judge) tasks: sample each pair in both orders (the copy's id is <id>~swap, choices reversed, answer flipped).")
    prompt_style: str = option("auto", "Prompt style: choice (lettered choices) or judge (which of two responses is better); auto: the task's own (files: choice).")
    permute_choices: bool = option(False, "Show every draw its question's choices in a seeded random order (labels stay, contents move, the gold follows), so training golds spread over all labels; the Sample records the order.")
    verify: bool = option(False, "Read each correct hinted sample's answer after the hint-free prompt + its completion (label probabilities at the answer marker) and record whether the gold wins (`verified`).")
    prompt: PromptTemplate = option(PromptTemplate(), "Prompt template (recipe only).")
    on_long: str = option("skip", "A question whose prompt + max_new_tokens exceeds the model's maximum length: skip (warn, and count it in the summary) or error.")
    checkpoint_every: int = option(64, "Save finished draws every N questions (in .<out>.partial/), so a rerun after an interruption resumes there; 0: no checkpoint.")

    def __post_init__(self) -> None:
        if not self.task:
            raise ValueError("--task is required (a task name from `fem tasks` or a file)")
        if self.num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {self.num_samples}")
        if self.budget < 1:
            raise ValueError(f"budget must be >= 1, got {self.budget}")
        QuestionSource.__post_init__(self)
        BackendSettings.__post_init__(self)
        if self.checkpoint_every < 0:
            raise ValueError(f"checkpoint_every must be >= 0, got {self.checkpoint_every}")
        check_on_long(self.on_long)
        parse_shard(self.shard)
        check_style(self.prompt_style)
        if not get_sampler(self.sampler).needs_model:
            reference_solutions(self.task)  # refused here, so a loop fails before its first stage
        SamplingSettings(temperature=self.temperature, top_p=self.top_p, max_new_tokens=self.max_new_tokens)


def parse_shard(shard: str) -> tuple[int, int]:
    try:
        index, count = (int(part) for part in shard.split("/"))
    except ValueError:
        raise ValueError(f"shard must look like i/n (e.g. 0/4), got {shard!r}") from None
    if not (count >= 1 and 0 <= index < count):
        raise ValueError(f"shard {shard!r}: need 0 <= i < n")
    return index, count


@dataclasses.dataclass
class Drawn:
    """What a sampler made, and with what."""

    samples: list[Sample]
    stats: dict[str, StageStats]
    skipped: list[str]  # questions too long for the model
    backend: str
    dtype: dict[str, str] | None  # {"resolved", "why"}; None: no model
    seconds: float  # drawing (and verifying), without loading the model
    checkpoint: Checkpoint | None


def run_sample(
    cfg: SampleConfig,
    on_status: Callable[[str], None] = print,
    progress: Callable[[str, int, int, int], None] | None = None,
) -> Path:
    """Sample, score and write; `progress(stage, done, total, tokens)` is called as it goes."""
    check_writable(cfg.out)
    sampler = get_sampler(cfg.sampler)
    loaded = cfg.load()
    index, count = parse_shard(cfg.shard)
    questions: list[Question] = loaded.questions[index::count]
    if not questions:
        raise FemError(f"shard {cfg.shard} of {loaded.task} ({len(loaded.questions)} questions) is empty")
    if cfg.swap_augment:  # after sharding, so both orders of a pair land in the same shard
        questions = swap_augment(questions)
    style = task_prompt_style(cfg.task, cfg.prompt_style)
    on_status(
        f"questions: {len(questions)} from {loaded.source}" + (f" (shard {cfg.shard})" if count > 1 else "")
        + (" (each pair in both orders)" if cfg.swap_augment else "") + f"; prompt style {style}"
    )
    if sampler.needs_model:
        drawn = _generated(cfg, sampler, questions, style, loaded, on_status, progress)
    else:
        drawn = _written(cfg, sampler, questions, style, loaded, on_status, progress)
    if drawn.checkpoint and drawn.checkpoint.summary():
        on_status(drawn.checkpoint.summary())
    write_jsonl(cfg.out, drawn.samples)
    stages = {f"{sampler.name}/{stage}": stats.summary() for stage, stats in drawn.stats.items()}
    if cfg.verify:
        for key, entry in verification_summary(drawn.samples).items():
            stages[key].update({"verified": entry["verified"], "verified_share": entry["verified_share"]})
    write_json(
        summary_path(cfg.out),
        {
            "task": loaded.task,
            "source": loaded.source,
            "split": cfg.split,
            "shard": cfg.shard,
            "prompt_style": style,
            "swap_augment": cfg.swap_augment,
            "permute_choices": cfg.permute_choices,
            "verify": cfg.verify,
            "questions": len(questions),
            "samples": len(drawn.samples),
            "skipped_too_long": len(drawn.skipped),
            "skipped_too_long_questions": drawn.skipped,
            "backend": drawn.backend,
            "dtype": drawn.dtype,
            "wall_seconds": round(drawn.seconds, 3),
            "stages": stages,
            **provenance(cfg, inputs=[loaded.path] if loaded.path else []),
        },
    )
    if drawn.checkpoint:
        drawn.checkpoint.finish()
    return Path(cfg.out)


def _generated(
    cfg: SampleConfig, sampler: Sampler, questions: list[Question], style: str, loaded: LoadedQuestions,
    on_status: Callable[[str], None], progress: Callable[[str, int, int, int], None] | None,
) -> Drawn:
    """Draw from the model, with the backend the config names."""
    model = resolve_model(cfg.model)
    backend_name, why = choose_backend(cfg.backend)
    dtype, dtype_why = cfg.resolved_dtype()
    on_status(f"backend: {backend_name} ({why}); model: {cfg.model} -> {model.path}; dtype: {dtype} ({dtype_why})")
    backend, _ = cfg.build_backend(model, cfg.seed)
    try:  # the backend holds the model (GPU memory): closed on every way out
        kept, skipped = split_too_long(
            questions,
            lambda q: max(
                prompt_length(backend.tokenizer, build_messages(q, cfg.prompt, hint=hint, style=style))
                for hint in sampler.prompt_hints
            ),
            backend.max_length, cfg.max_new_tokens, cfg.on_long, warn=on_status,
        )
        if not kept:
            raise FemError(f"every question is too long for the model's maximum length of {backend.max_length} tokens")
        if cfg.verify:  # before any draw: a backend that cannot verify fails in seconds
            require(backend, LABEL_PROBS, "--verify")
        checkpoint = Checkpoint.open(
            Path(cfg.out),
            fingerprint(cfg, [loaded.path] if loaded.path else [], model.adapter or model.path),
            on_status, enabled=cfg.checkpoint_every > 0,
        )
        proposal = Proposal(
            backend=backend,
            settings=SamplingSettings(temperature=cfg.temperature, top_p=cfg.top_p, max_new_tokens=cfg.max_new_tokens),
            template=cfg.prompt,
            style=style,
            sampler=sampler.name,
            model=cfg.model,
            seed=cfg.seed,
            generation=GenerationSettings(
                backend=backend_name, temperature=cfg.temperature, top_p=cfg.top_p,
                max_new_tokens=cfg.max_new_tokens, seed=cfg.seed,
            ),
            on_progress=progress,
            checkpoint_every=cfg.checkpoint_every,
            checkpoint=checkpoint,
            permute_choices=cfg.permute_choices,
        )
        started = time.perf_counter()
        samples = sampler.run(kept, proposal, SamplerOptions(num_samples=cfg.num_samples, budget=cfg.budget))
        if cfg.verify:
            verify_started = time.perf_counter()
            samples = verify(samples, backend)
            on_status(f"verified without the hint in {time.perf_counter() - verify_started:.1f} s")
    finally:
        backend.close()
    return Drawn(samples, proposal.stats, skipped, backend_name, {"resolved": dtype, "why": dtype_why},
                 time.perf_counter() - started, checkpoint)


def _written(
    cfg: SampleConfig, sampler: Sampler, questions: list[Question], style: str, loaded: LoadedQuestions,
    on_status: Callable[[str], None], progress: Callable[[str, int, int, int], None] | None,
) -> Drawn:
    """The task's worked solutions: no model is resolved or loaded, so --model and the backend
    options are not used, and nothing is too long (no tokenizer to measure with). Instant, so
    nothing is checkpointed."""
    on_status(f"reference solutions of {loaded.task}, one per question: no model is loaded")
    proposal = Proposal(
        write=reference_solutions(cfg.task),
        template=cfg.prompt,
        style=style,
        sampler=sampler.name,
        model=f"reference:{loaded.task}",
        seed=cfg.seed,
        generation=None,
        on_progress=progress,
        permute_choices=cfg.permute_choices,
    )
    started = time.perf_counter()
    samples = sampler.run(questions, proposal, SamplerOptions(num_samples=cfg.num_samples, budget=cfg.budget))
    if cfg.verify:  # never hinted: each is verified by its own reward, without a model
        samples = verify(samples, None)
    return Drawn(samples, proposal.stats, [], "reference", None, time.perf_counter() - started, None)
