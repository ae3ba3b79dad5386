"""Device, threads and precision set-up (fem_cli.runtime), on faked hardware."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fem_cli import runtime
from fem_cli.runtime import Hardware, cpu_flags, resolve_dtype, resolve_precision

AVX2_ONLY = Hardware(cpu_flags=frozenset({"sse4_2", "avx2", "fma"}))
AVX512_NO_BF16 = Hardware(cpu_flags=frozenset({"avx2", "avx512f", "avx512bw"}))
AVX512_BF16 = Hardware(cpu_flags=frozenset({"avx2", "avx512f", "avx512_bf16"}))
AMX = Hardware(cpu_flags=frozenset({"avx2", "avx512f", "amx_tile", "amx_bf16"}))
CUDA_BF16 = Hardware(cuda=True, cuda_bf16=True, cpu_flags=AVX2_ONLY.cpu_flags)
CUDA_NO_BF16 = Hardware(cuda=True, cuda_bf16=False, cpu_flags=AVX512_BF16.cpu_flags)


@pytest.mark.parametrize(
    ("hardware", "precision", "dtype", "why"),
    [
        (AVX2_ONLY, "fp32", "float32", "auto: the CPU has neither avx512_bf16 nor amx_bf16"),
        (AVX512_NO_BF16, "fp32", "float32", "auto: the CPU has neither avx512_bf16 nor amx_bf16"),
        (AVX512_BF16, "bf16", "bfloat16", "auto: the CPU has avx512_bf16"),
        (AMX, "bf16", "bfloat16", "auto: the CPU has amx_bf16"),
        (CUDA_BF16, "bf16", "bfloat16", "auto: the CUDA GPU supports bf16"),
        # The GPU runs the model, whatever the CPU can do; inference falls back to float16 there.
        (CUDA_NO_BF16, "fp32", "float16", "auto: the CUDA GPU has no bf16"),
    ],
)
def test_auto_follows_the_hardware(hardware, precision, dtype, why) -> None:
    assert resolve_precision("auto", hardware)[0] == precision
    assert resolve_dtype("auto", "vllm", hardware)[0] == dtype
    assert resolve_precision("auto", hardware)[1].startswith(why)
    assert resolve_dtype("auto", "vllm", hardware)[1].startswith(why)
    if hardware.cuda:
        assert resolve_dtype("auto", "hf", hardware) == resolve_dtype("auto", "vllm", hardware)


@pytest.mark.parametrize("hardware", [AVX2_ONLY, AVX512_BF16, AMX])
def test_transformers_on_cpu_keeps_float32_for_batch_independent_samples(hardware) -> None:
    dtype, why = resolve_dtype("auto", "hf", hardware)
    assert dtype == "float32" and "bf16 rounding makes draws depend on the batch size" in why


@pytest.mark.parametrize("hardware", [AVX2_ONLY, AVX512_BF16, CUDA_NO_BF16])
def test_an_explicit_choice_is_kept_on_any_hardware(hardware) -> None:
    assert resolve_precision("bf16", hardware) == ("bf16", "--precision bf16")
    assert resolve_precision("fp32", hardware) == ("fp32", "--precision fp32")
    assert resolve_dtype("float16", "hf", hardware) == ("float16", "--dtype float16")


def test_unknown_values_are_refused() -> None:
    with pytest.raises(ValueError, match="precision must be one of auto, fp32, bf16, got 'fp16'"):
        resolve_precision("fp16", AVX2_ONLY)
    with pytest.raises(ValueError, match="dtype must be one of auto, float32, bfloat16, float16, got 'half'"):
        resolve_dtype("half", "vllm", AVX2_ONLY)


def test_cpu_flags_are_read_from_cpuinfo(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16\n\n"
        "processor\t: 1\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16\n"
    )
    assert cpu_flags(cpuinfo) == {"fpu", "sse2", "avx2", "avx512f", "avx512_bf16"}
    # ARM's /proc/cpuinfo calls them Features.
    cpuinfo.write_text("processor\t: 0\nFeatures\t: fp asimd bf16\n")
    assert cpu_flags(cpuinfo) == {"fp", "asimd", "bf16"}


def test_without_cpuinfo_torch_probes_the_cpu(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    assert cpu_flags(tmp_path / "missing") == {"avx512_bf16"}


def test_detect_hardware_reads_cuda_and_cpu(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(runtime, "cpu_flags", lambda: frozenset({"avx512_bf16"}))
    assert runtime.detect_hardware() == Hardware(cuda=False, cuda_bf16=False, cpu_flags=frozenset({"avx512_bf16"}))


def test_threads_default_to_omp_num_threads_then_the_cpus_this_process_may_use(monkeypatch) -> None:
    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        assert runtime.set_threads(None) == 1 and torch.get_num_threads() == 1
        monkeypatch.delenv("OMP_NUM_THREADS")
        monkeypatch.setattr(runtime.os, "sched_getaffinity", lambda pid: {0, 3}, raising=False)
        assert runtime.default_threads() == 2
        assert runtime.set_threads(1) == 1
    finally:
        torch.set_num_threads(before)
