"""Model and process set-up in one place: the device, the CPU threads, and the precision the
hardware runs natively.

`auto` precision means bf16 where the hardware computes in it natively (a CUDA GPU with bf16, a
CPU with AVX512-BF16 or AMX) and fp32 elsewhere: on a CPU without those instructions bf16 is
emulated through fp32 conversions and runs slower than fp32 itself. Every choice comes with the
reason, which outputs record.

    hardware = detect_hardware()
    precision, why = resolve_precision("auto", hardware)   # ("bf16", "auto: the CPU has avx512_bf16")
    dtype, why = resolve_dtype("auto", "vllm", hardware)    # ("bfloat16", ...); "hf" on a CPU: float32
    set_threads(None)                                      # once per process, at the CLI entry

Threads are a process-wide torch setting, so only the CLI commands set them (`set_threads`),
never a backend or an evaluator: library callers keep whatever their process chose.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

PRECISIONS = ("auto", "fp32", "bf16")
DTYPES = ("auto", "float32", "bfloat16", "float16")
# CPU flags (as /proc/cpuinfo spells them) that mean native bf16 arithmetic.
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


@dataclasses.dataclass(frozen=True)
class Hardware:
    """What decides the precision: the accelerator and the CPU's instruction set."""

    cuda: bool = False
    cuda_bf16: bool = False
    cpu_flags: frozenset[str] = frozenset()

    @property
    def bf16_cpu_flags(self) -> list[str]:
        return [flag for flag in BF16_CPU_FLAGS if flag in self.cpu_flags]


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The CPU's feature flags: /proc/cpuinfo on Linux, else what torch's own probe reports."""
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("flags", "Features"):
                return frozenset(value.split())
    import torch

    # No /proc (macOS, Windows): torch checks the same instructions with cpuid.
    probes = {"avx512_bf16": "_is_avx512_bf16_supported", "amx_bf16": "_is_amx_tile_supported"}
    return frozenset(flag for flag, probe in probes.items() if getattr(torch.cpu, probe, lambda: False)())


def detect_hardware() -> Hardware:
    import torch

    cuda = torch.cuda.is_available()
    return Hardware(cuda=cuda, cuda_bf16=cuda and torch.cuda.is_bf16_supported(), cpu_flags=cpu_flags())


def native_bf16(hardware: Hardware) -> tuple[bool, str]:
    """Whether the device that will run the model computes in bf16 natively, and why."""
    if hardware.cuda:
        return (True, "the CUDA GPU supports bf16") if hardware.cuda_bf16 else (False, "the CUDA GPU has no bf16")
    flags = hardware.bf16_cpu_flags
    if flags:
        return True, f"the CPU has {' and '.join(flags)}"
    return False, "the CPU has neither avx512_bf16 nor amx_bf16 (bf16 would be emulated)"


def check_precision(value: str) -> None:
    if value not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {value!r}")


def check_dtype(value: str) -> None:
    if value not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {value!r}")


def resolve_precision(requested: str, hardware: Hardware | None = None) -> tuple[str, str]:
    """Training precision ('fp32' or 'bf16' mixed precision) for `requested`, and why."""
    check_precision(requested)
    if requested != "auto":
        return requested, f"--precision {requested}"
    native, why = native_bf16(hardware or detect_hardware())
    return ("bf16" if native else "fp32"), f"auto: {why}"


def resolve_dtype(requested: str, engine: str, hardware: Hardware | None = None) -> tuple[str, str]:
    """Weights dtype for generation and scoring ('float32', 'bfloat16', 'float16') on `engine`
    ('hf': transformers, the hf backend and loglik; 'vllm'), and why.

    Without native bf16 a GPU still computes fast in float16 (inference needs no loss scaling).
    transformers on a CPU keeps float32 even with native bf16: bf16's coarse rounding makes a
    sample depend on the shape of the batch it was decoded in (the same seed at two batch sizes
    gave different files on the tiny test model), which breaks fem's byte-identical-at-any-batch-
    size contract, and moves log-likelihoods far more than lm-eval's 1e-3 agreement allows. In
    float32 a real model's products also round differently at different row counts, but a draw
    changes rarely (SmolLM2, 128 draws decoded 32, 64 or 128 rows at a time: 1-2 differ)."""
    check_dtype(requested)
    if requested != "auto":
        return requested, f"--dtype {requested}"
    hardware = hardware or detect_hardware()
    if engine == "hf" and not hardware.cuda:
        return "float32", "auto: transformers on CPU keeps float32 (bf16 rounding makes draws depend on the batch size)"
    native, why = native_bf16(hardware)
    if native:
        return "bfloat16", f"auto: {why}"
    return ("float16" if hardware.cuda else "float32"), f"auto: {why}"


def device() -> "torch.device":  # noqa: F821  (torch is imported lazily)
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def default_threads() -> int:
    """$OMP_NUM_THREADS when set (torchrun sets it to share the cores among its processes),
    else the CPUs this process may use (container limits included), not the host's count."""
    configured = os.environ.get("OMP_NUM_THREADS", "")
    if configured.isdigit() and int(configured) > 0:
        return int(configured)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def set_threads(threads: int | None) -> int:
    """Set torch's intra-op threads for this process (default: `default_threads()`)."""
    import torch

    count = threads or default_threads()
    torch.set_num_threads(count)
    return count
