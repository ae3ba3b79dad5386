"""The M-step: fine-tune on filtered rationales (`run_finetune`), configured by `FinetuneConfig`.

The config is importable without torch; `fem_cli.train.finetune` pulls in transformers.

    from fem_cli.train.finetune import run_finetune
"""

from fem_cli.train.config import FinetuneConfig

__all__ = ["FinetuneConfig"]
