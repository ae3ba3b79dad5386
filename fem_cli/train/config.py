"""FinetuneConfig: every setting of the M-step (`fem finetune`), each documented once.

    cfg = build_config(FinetuneConfig, recipe="recipes/m_step.yaml", overrides={"epochs": 2})
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Literal, Optional

from fem_cli.config import option
from fem_cli.runtime import check_precision

INITS = ("base", "continue")
REPORTERS = ("none", "tensorboard", "wandb")


@dataclasses.dataclass
class FinetuneConfig:
    model: str = option(
        "",
        "Model to fine-tune and load: an alias, a local folder (a full model or a LoRA adapter) or a hub id. "
        "With --init continue the EM loop passes the previous iteration's checkpoint here.",
    )
    train: Optional[Path] = option(None, "Training examples (TrainExample JSONL, the output of `fem filter`).")
    out: Optional[Path] = option(None, "Output folder for the fine-tuned model, its tokenizer and fem_train.json.")
    init: Literal["base", "continue"] = option(
        "base",
        "Where this M-step starts: 'base' (the original model, STaR's restart) or 'continue' (the previous "
        "checkpoint). Recorded in fem_train.json; --model is what is loaded either way.",
    )
    overwrite: bool = option(False, "Replace --out even if it already holds a finished fine-tune.")
    max_length: int = option(
        1024, "Longest example in tokens (prompt + completion); longer ones are dropped and counted, never truncated."
    )
    learning_rate: float = option(
        1e-5,
        "Peak learning rate (linear warm-up, then linear decay to 0). 0 is a no-op step, the identity check: "
        "its output must evaluate exactly as the model it started from.",
    )
    epochs: int = option(1, "Passes over the training examples.")
    batch_size: int = option(8, "Examples per device per step.")
    grad_accum: int = option(1, "Gradient accumulation steps (effective batch = batch_size x grad_accum x devices).")
    warmup_ratio: float = option(0.0, "Share of the steps spent warming the learning rate up from 0, in [0, 1).")
    weight_decay: float = option(0.0, "AdamW weight decay.")
    seed: int = option(0, "Seed for initialization of LoRA weights, data order and dropout.")
    precision: Literal["auto", "fp32", "bf16"] = option(
        "auto",
        "fp32, or bf16 mixed precision (autocast; the weights stay and are saved in fp32); auto: bf16 where "
        "the hardware computes it natively (a CUDA GPU with bf16, a CPU with AVX512-BF16 or AMX), else fp32. "
        "fem_train.json records the choice and why.",
    )
    group_by_length: bool = option(
        True, "Batch examples of similar length together, so little compute goes to padding."
    )
    lora_r: int = option(0, "LoRA rank; 0 means full fine-tuning.")
    lora_alpha: int = option(16, "LoRA scaling alpha.")
    lora_dropout: float = option(0.05, "Dropout on the LoRA branch.")
    lora_target_modules: str = option(
        "all-linear", "Modules that get LoRA adapters: 'all-linear' or comma-separated names (q_proj,v_proj)."
    )
    merge: bool = option(
        False, "With LoRA: merge the adapter and save a plain model (loads anywhere, vLLM included)."
    )
    report_to: Literal["none", "tensorboard", "wandb"] = option(
        "none", "Where the Trainer also logs: none, tensorboard (into the output folder) or wandb."
    )

    def __post_init__(self) -> None:
        # Library callers may pass plain strings; the CLI and recipes already give Paths.
        self.train = Path(self.train) if self.train is not None else None
        self.out = Path(self.out) if self.out is not None else None
        if not self.model:
            raise ValueError("model is required (--model)")
        if self.train is None:
            raise ValueError("train is required (--train FILE.jsonl)")
        if self.out is None:
            raise ValueError("out is required (--out FOLDER)")
        _one_of("init", self.init, INITS)
        check_precision(self.precision)
        _one_of("report_to", self.report_to, REPORTERS)
        for name in ("max_length", "epochs", "batch_size", "grad_accum", "lora_alpha"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        # `not >= 0` also refuses NaN.
        if not self.learning_rate >= 0:
            raise ValueError(f"learning_rate must be >= 0 (0: a no-op step), got {self.learning_rate}")
        if not 0 <= self.warmup_ratio < 1:
            raise ValueError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if self.lora_r < 0:
            raise ValueError(f"lora_r must be >= 0 (0 = full fine-tuning), got {self.lora_r}")
        if not 0 <= self.lora_dropout < 1:
            raise ValueError(f"lora_dropout must be in [0, 1), got {self.lora_dropout}")
        if not self.target_modules():
            raise ValueError("lora_target_modules is empty")
        if self.merge and self.lora_r == 0:
            raise ValueError("merge needs LoRA (--lora-r > 0); full fine-tuning always saves a plain model")

    def target_modules(self) -> str | list[str]:
        """What peft's LoraConfig expects: the 'all-linear' shortcut or a list of module names."""
        if self.lora_target_modules.strip() == "all-linear":
            return "all-linear"
        return [name.strip() for name in self.lora_target_modules.split(",") if name.strip()]


def _one_of(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
