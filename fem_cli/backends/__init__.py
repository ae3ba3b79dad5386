"""Generation backends behind one interface (`base.GenerationBackend`): `hf` (transformers) and
`vllm` (imported only when chosen). `auto` picks vLLM when it is installed, else hf.

    backend, why = create_backend("auto", resolve_model("smollm2"), BackendOptions())
"""

from __future__ import annotations

import dataclasses

from fem_cli.backends.base import GenerationBackend
from fem_cli.config import did_you_mean
from fem_cli.errors import FemError
from fem_cli.models import ResolvedModel
from fem_cli.runtime import resolve_dtype

BACKENDS = ("auto", "hf", "vllm")


@dataclasses.dataclass(frozen=True)
class BackendOptions:
    batch_size: int = 32
    dtype: str = "auto"  # auto: chosen per backend and hardware (fem_cli.runtime.resolve_dtype)
    tensor_parallel_size: int = 1
    max_model_len: int = 2048
    seed: int = 0
    trust_remote_code: bool = False


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
    chosen, why = choose_backend(name)
    dtype, _ = resolve_dtype(options.dtype, chosen)
    if chosen == "vllm":
        from fem_cli.backends.vllm import VLLMBackend

        backend: GenerationBackend = VLLMBackend(
            model,
            dtype=dtype,
            max_model_len=options.max_model_len,
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
