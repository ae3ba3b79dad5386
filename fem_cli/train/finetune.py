"""The M-step: fine-tune a model on the kept rationales, loss on the completion tokens only.

Built on transformers' `Trainer` rather than TRL's `SFTTrainer`: the completion-only mask is made
here, explicitly and checked token by token (data.py), with no dependency on TRL's fast-changing
API, while Trainer gives length-grouped batches, DDP under torchrun / accelerate launch, mixed
precision and reporting. Only positions that predict a completion token go through the LM head
(`completion_only_loss`). LoRA comes from peft.

The output is written to a hidden sibling of `--out` and renamed into place at the end, with
fem_train.json (provenance, counts, losses, throughput) written last: a killed run never leaves a
folder that looks finished. Only the main process writes. On a machine without GPUs, use
`torchrun --nproc_per_node N` or `accelerate launch --multi_gpu --num_processes N` for N processes.

    fem finetune --model smollm2 --train runs/it1/train.jsonl --out runs/it1/ckpt
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import shutil
import time
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from transformers import Trainer, TrainerCallback, TrainingArguments, set_seed
from transformers.trainer_callback import PrinterCallback

from fem_cli.errors import FemError
from fem_cli.jsonl import read_jsonl, write_json
from fem_cli.models import ResolvedModel, load_model, load_tokenizer, resolve_model
from fem_cli.outputs import check_writable
from fem_cli.provenance import provenance
from fem_cli.records import TrainExample
from fem_cli.runs import TRAIN_RECORD
from fem_cli.runtime import resolve_precision
from fem_cli.timings import loading
from fem_cli.train.config import FinetuneConfig
from fem_cli.train.data import IGNORE_INDEX, CompletionCollator, TokenizedData, tokenize_examples

MARKER = TRAIN_RECORD
FEM_TRAIN_SCHEMA = 1
# Either package serves Trainer's tensorboard reporting.
REPORTER_PACKAGES = {"tensorboard": ("tensorboard", "tensorboardX"), "wandb": ("wandb",)}


def run_finetune(cfg: FinetuneConfig) -> Path:
    """Fine-tune `cfg.model` on `cfg.train`; return the output folder (complete on return)."""
    out: Path = cfg.out  # type: ignore[assignment]  # required, checked in FinetuneConfig
    check_writable(out, kind="renamed_folder")
    _check_output(out, cfg.overwrite)
    _check_reporter(cfg.report_to)
    examples = read_jsonl(cfg.train, TrainExample)  # type: ignore[arg-type]
    if not examples:
        raise FemError(f"{cfg.train}: no training examples")
    resolved = resolve_model(cfg.model)
    tokenizer = load_tokenizer(resolved)
    data = tokenize_examples(tokenizer, examples, cfg.max_length, source=str(cfg.train))
    if data.kept == 0:
        raise FemError(
            f"{cfg.train}: all {data.read} examples are longer than max_length={cfg.max_length} tokens; "
            "raise --max-length"
        )
    set_seed(cfg.seed)  # before the model: LoRA weights are initialized when they are added
    with loading():
        model = _trainable_model(resolved, cfg)
    use_cache = getattr(model.config, "use_cache", True)
    precision = resolve_precision(cfg.precision)

    staging = out.parent / f".{out.name}.partial"
    args = _training_arguments(cfg, precision[0], staging)
    if args.should_save:
        # A killed run may have left a staging folder; its files must not leak into this output.
        shutil.rmtree(staging, ignore_errors=True)
    trainer = CompletionOnlyTrainer(
        model=model,
        args=args,
        train_dataset=data.features,
        data_collator=CompletionCollator(pad_token_id=tokenizer.pad_token_id),
        processing_class=tokenizer,
        callbacks=[RichProgress()],
    )
    trainer.remove_callback(PrinterCallback)  # RichProgress shows the logs instead of raw dicts
    result = trainer.train()
    # Trainer turned the model's KV cache off for training (config.use_cache = args.use_cache);
    # the saved config keeps the base's setting, so the output loads as its base did.
    model.config.use_cache = use_cache

    if trainer.is_world_process_zero():
        staging.mkdir(parents=True, exist_ok=True)
        kind = _save_model(trainer.accelerator.unwrap_model(trainer.model), cfg, resolved, staging)
        tokenizer.save_pretrained(staging)
        write_json(staging / MARKER, _train_record(cfg, resolved, kind, data, precision, trainer, result.metrics))
        _publish(staging, out)
    # Every process returns only once the output is in place.
    trainer.accelerator.wait_for_everyone()
    return out


def completion_only_loss(model: Any, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, Any]:
    """Summed cross-entropy over the trained tokens, their number, and the model outputs.

    Equal to the model's own masked loss, but only positions that predict a trained token in some
    row of the batch go through the vocabulary-sized LM head (`logits_to_keep`): prompts are most
    of each example, and no (batch, length, vocab) logits tensor is built.
    """
    inputs = {key: value for key, value in batch.items() if key != "labels"}
    targets = batch["labels"][:, 1:]
    keep = (targets != IGNORE_INDEX).any(dim=0).nonzero().squeeze(-1)
    outputs = model(**inputs, logits_to_keep=keep, use_cache=False)
    kept = targets[:, keep]
    loss_sum = torch.nn.functional.cross_entropy(
        outputs.logits.flatten(0, 1).float(), kept.flatten(), ignore_index=IGNORE_INDEX, reduction="sum"
    )
    return loss_sum, (kept != IGNORE_INDEX).sum(), outputs


class CompletionOnlyTrainer(Trainer):
    """Trainer with `completion_only_loss`, normalized the way Trainer normalizes model losses."""

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):  # type: ignore[no-untyped-def]
        loss_sum, count, outputs = completion_only_loss(model, inputs)
        if num_items_in_batch is None:
            # A per-batch mean; training_step then divides by the gradient accumulation steps.
            loss = loss_sum / count
        else:
            # Normalized over the whole accumulated batch (all processes when tokens are averaged
            # across devices, where DDP's gradient averaging is undone by the factor).
            loss = loss_sum / num_items_in_batch
            if self.args.average_tokens_across_devices:
                loss = loss * self.accelerator.num_processes
        return (loss, outputs) if return_outputs else loss


def _check_output(out: Path, overwrite: bool) -> None:
    if overwrite or not out.exists():
        return
    if not out.is_dir():
        raise FemError(f"--out {out}: exists and is not a folder")
    if (out / MARKER).is_file():
        raise FemError(f"--out {out}: already holds a finished fine-tune; pass --overwrite to replace it")
    if any(out.iterdir()):
        raise FemError(f"--out {out}: folder is not empty; pass --overwrite to replace it")


def _check_reporter(report_to: str) -> None:
    # Checked before the model loads: Trainer would only fail after that, with a traceback.
    packages = REPORTER_PACKAGES.get(report_to, ())
    if packages and not any(importlib.util.find_spec(name) for name in packages):
        raise FemError(f"--report-to {report_to}: the {packages[0]} package is not installed (pip install {packages[0]})")


def _trainable_model(resolved: ResolvedModel, cfg: FinetuneConfig) -> Any:
    if cfg.lora_r == 0:
        # Full fine-tuning; an adapter given as --model is merged into its base first.
        return load_model(resolved)
    from peft import LoraConfig, PeftModel, get_peft_model

    base = load_model(dataclasses.replace(resolved, adapter=None))
    if resolved.adapter:
        # --init continue with LoRA: keep training the previous iteration's adapter.
        model = PeftModel.from_pretrained(base, resolved.adapter, is_trainable=True)
        previous_r = model.peft_config["default"].r
        if previous_r != cfg.lora_r:
            raise FemError(f"--model {cfg.model}: the adapter has LoRA rank {previous_r}, not --lora-r {cfg.lora_r}")
        return model
    lora = LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=cfg.target_modules(),
        task_type="CAUSAL_LM",
    )
    try:
        return get_peft_model(base, lora)
    except ValueError as err:
        raise FemError(f"--lora-target-modules {cfg.lora_target_modules}: {err}") from None


def _training_arguments(cfg: FinetuneConfig, precision: str, output_dir: Path) -> TrainingArguments:
    return TrainingArguments(
        output_dir=str(output_dir),  # Trainer itself writes only tensorboard logs there
        num_train_epochs=cfg.epochs,
        per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        learning_rate=cfg.learning_rate,
        warmup_steps=cfg.warmup_ratio,  # a float in [0, 1) is a share of the steps
        weight_decay=cfg.weight_decay,
        seed=cfg.seed,
        bf16=precision == "bf16",
        train_sampling_strategy="group_by_length" if cfg.group_by_length else "random",
        logging_steps=1,
        save_strategy="no",  # the one checkpoint is saved by run_finetune, atomically
        report_to=cfg.report_to,
        include_num_input_tokens_seen="non_padding",
        remove_unused_columns=False,
        # Every parameter takes part in each step; the unused-parameter search only costs time.
        ddp_find_unused_parameters=False,
        disable_tqdm=True,
        # Accelerate sets up gloo DDP only when told it runs on CPU; otherwise torchrun on a
        # machine without an accelerator would start N independent runs.
        use_cpu=not has_accelerator(),
        dataloader_pin_memory=has_accelerator(),
    )


def has_accelerator() -> bool:
    """Whether torch sees a GPU (or another accelerator) to train on."""
    accelerator = getattr(torch, "accelerator", None)  # torch >= 2.6; CUDA only before
    return accelerator.is_available() if accelerator is not None else torch.cuda.is_available()


def _save_model(model: Any, cfg: FinetuneConfig, resolved: ResolvedModel, folder: Path) -> str:
    """Save weights as safetensors; returns what was saved: full, lora-merged or lora-adapter."""
    if cfg.lora_r == 0:
        model.save_pretrained(folder)
        return "full"
    if cfg.merge:
        model.merge_and_unload().save_pretrained(folder)
        return "lora-merged"
    # resolve_model(folder) finds the base through this field, so it must be the loadable base path.
    model.peft_config["default"].base_model_name_or_path = resolved.path
    model.save_pretrained(folder)
    return "lora-adapter"


def _train_record(
    cfg: FinetuneConfig, resolved: ResolvedModel, kind: str, data: TokenizedData, precision: tuple[str, str],
    trainer: Trainer, metrics: dict[str, float],
) -> dict[str, Any]:
    losses = [
        {"step": entry["step"], "loss": entry["loss"]} for entry in trainer.state.log_history if "loss" in entry
    ]
    runtime = metrics["train_runtime"]
    tokens_seen = int(trainer.state.num_input_tokens_seen)
    return {
        "schema_version": FEM_TRAIN_SCHEMA,
        "provenance": provenance(cfg, inputs=[cfg.train]),  # type: ignore[list-item]
        "init": cfg.init,
        "model": {"name": cfg.model, "base_path": resolved.path, "adapter_in": resolved.adapter, "saved": kind},
        "counts": {
            "examples_read": data.read,
            "kept": data.kept,
            "dropped_too_long": data.dropped_too_long,
            # One pass over the kept examples; training saw these x epochs.
            "completion_tokens_per_epoch": data.completion_tokens,
            "total_tokens_per_epoch": data.total_tokens,
        },
        "training": {
            "world_size": trainer.args.world_size,
            "precision": precision[0],  # fp32 or bf16, what ran (the config keeps what was asked)
            "precision_why": precision[1],
            "steps": trainer.state.global_step,
            "epochs": cfg.epochs,
            "runtime_s": runtime,
            # Non-padding tokens fed to the model, summed over processes.
            "tokens_seen": tokens_seen,
            "tokens_per_s": tokens_seen / runtime if runtime > 0 else None,
            "final_loss": losses[-1]["loss"] if losses else None,
            "mean_loss": metrics.get("train_loss"),
            "losses": losses,
        },
    }


def _publish(staging: Path, out: Path) -> None:
    """Rename the finished staging folder to `out`; an old output is removed only now."""
    if not out.exists():
        os.replace(staging, out)
        return
    old = out.parent / f".{out.name}.old"
    shutil.rmtree(old, ignore_errors=True)
    os.replace(out, old)
    os.replace(staging, out)
    shutil.rmtree(old)


class RichProgress(TrainerCallback):
    """A rich progress bar with steps, loss and tokens/s, on the main process only."""

    def __init__(self) -> None:
        self.progress: Progress | None = None
        self.task: Any = None
        self.started = 0.0

    def on_train_begin(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
        if not state.is_world_process_zero:
            return
        self.progress = Progress(
            TextColumn("[bold]finetune"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"), TextColumn("{task.fields[speed]} tok/s"),
            TimeElapsedColumn(), console=Console(stderr=True),
        )
        self.task = self.progress.add_task("steps", total=state.max_steps, loss="-", speed="-")
        self.started = time.perf_counter()
        self.progress.start()

    def on_log(self, args, state, control, logs=None, **kwargs):  # type: ignore[no-untyped-def]
        if self.progress is None or not logs or "loss" not in logs:
            return
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        self.progress.update(
            self.task, completed=state.global_step, loss=f"{logs['loss']:.4f}",
            speed=f"{state.num_input_tokens_seen / elapsed:,.0f}",
        )

    def on_train_end(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
        if self.progress is not None:
            self.progress.update(self.task, completed=state.global_step)
            self.progress.stop()
            self.progress = None
