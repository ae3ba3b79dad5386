"""Generation backends behind one interface (`base.GenerationBackend`): `hf` (transformers) and
`vllm` (imported only when chosen). `auto` picks vLLM when it is installed, else hf.
`BackendSettings` is the config part of every command that generates (their options, once).

    backend, why = create_backend("auto", resolve_model("smollm2"), BackendOptions())
"""

from __future__ import annotations

import dataclasses
from typing import Optional

from fem_cli.backends.base import GenerationBackend
from fem_cli.config import did_you_mean, option
from fem_cli.errors import FemError
from fem_cli.models import ResolvedModel
from fem_cli.runtime import check_dtype, resolve_dtype
from fem_cli.timings import loading

BACKENDS = ("auto", "hf", "vllm")


@dataclasses.dataclass(frozen=True)
class BackendOptions:
    batch_size: int = 32
    dtype: str = "auto"  # auto: chosen per backend and hardware (fem_cli.runtime.resolve_dtype)
    tensor_parallel_size: int = 1
    max_model_len: int = 2048
    vllm_eager: bool = False
    seed: int = 0
    trust_remote_code: bool = False


@dataclasses.dataclass
class BackendSettings:
    """The backend options of `fem sample` and `fem evaluate`, declared once: their configs
    inherit these fields, so recipes and flags use the same flat names (`--backend hf`)."""

    backend: str = option("auto", "Generation backend: auto (vLLM when installed, else hf), hf (transformers) or vllm.")
    batch_size: int = option(64, "hf backend: sequences decoded together (a finished one is replaced at once by the next prompt's).")
    dtype: str = option("auto", "Weights dtype: auto (a GPU: bfloat16 where it has bf16, else float16; a CPU: float32 on transformers (in bf16 draws depend on the batch size), and on vllm bfloat16 where AVX512-BF16 or AMX compute it natively), float32, bfloat16, float16.")
    threads: Optional[int] = option(None, "CPU threads of this process (default: $OMP_NUM_THREADS, else all it may use).")
    tensor_parallel_size: int = option(1, "vllm backend: GPUs per model.")
    max_model_len: int = option(2048, "vllm backend: longest prompt + completion.")
    vllm_eager: bool = option(False, "vllm backend: run the model eagerly, without torch.compile (a faster engine start, slower decoding: worth it for short jobs, e.g. on CPU).")
    trust_remote_code: bool = option(False, "Allow model code from the hub (off unless you ask).")

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        choose_backend(self.backend)
        check_dtype(self.dtype)

    def resolved_dtype(self) -> tuple[str, str]:
        """(the weights dtype `auto` or the given one resolves to on this hardware, why)."""
        return resolve_dtype(self.dtype, choose_backend(self.backend)[0])

    def build_backend(self, model: ResolvedModel, seed: int) -> tuple[GenerationBackend, str]:
        """(the backend these settings describe, loaded with `model`; why it was chosen)."""
        return create_backend(
            self.backend,
            model,
            BackendOptions(
                batch_size=self.batch_size, dtype=self.dtype,
                tensor_parallel_size=self.tensor_parallel_size, max_model_len=self.max_model_len, vllm_eager=self.vllm_eager,
                seed=seed, trust_remote_code=self.trust_remote_code,
            ),
        )


def choose_backend(name: str) -> tuple[str, str]:
    """(backend name, why it was chosen)."""
    if name not in BACKENDS:
        raise FemError(f"unknown backend {name!r}{did_you_mean(name, list(BACKENDS))}; choose from {', '.join(BACKENDS)}")
    if name != "auto":
        return name, f"--backend {name}"
    from fem_cli.backends.vllm import vllm_available

    if vllm_available():
        return "vllm", "auto: vLLM is installed"
    return "hf", "auto: vLLM is not installed"


def create_backend(name: str, model: ResolvedModel, options: BackendOptions) -> tuple[GenerationBackend, str]:
    with loading():  # the backend's imports, its weights, and for vLLM the engine
        return _create_backend(name, model, options)


def _create_backend(name: str, model: ResolvedModel, options: BackendOptions) -> tuple[GenerationBackend, str]:
    chosen, why = choose_backend(name)
    dtype, _ = resolve_dtype(options.dtype, chosen)
    if chosen == "vllm":
        from fem_cli.backends.vllm import VLLMBackend

        backend: GenerationBackend = VLLMBackend(
            model,
            dtype=dtype,
            max_model_len=options.max_model_len,
            enforce_eager=options.vllm_eager,
            tensor_parallel_size=options.tensor_parallel_size,
            seed=options.seed,
            trust_remote_code=options.trust_remote_code,
        )
    else:
        from fem_cli.backends.hf import HFBackend

        backend = HFBackend(
            model,
            dtype=dtype,
            batch_size=options.batch_size,
            trust_remote_code=options.trust_remote_code,
        )
    return backend, why
