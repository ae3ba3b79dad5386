"""Useful tokens/s of `fem sample` (hf and vllm backends) against the best a careful transformers
user writes for the same job, measured in the same run.

The job: --questions ARC-Easy validation questions x --num-samples PPS (hinted) draws,
temperature 0.7, at most --max-new-tokens new tokens, each draw ending at its `Answer: X` line.
Every contender runs in a process of its own, with the model loaded before its clock starts:

- `hf`, `vllm`: `fem sample` (its sampling stage's own wall time; for vllm the engine start is
  printed apart, as it is paid once per run);
- `generate`: `model.generate` on batches of --generate-batch prompts, left-padded, with
  `num_return_sequences` draws each, `stop_strings` ending the answer line, the same temperature
  and token limit;
- `generate_batch`: transformers' continuous batching, where the installed version has it (its
  own scheduler and paged cache; it has no stop strings, so it runs each draw to end of turn or
  the limit), capped in wall time and resident memory: a run over the cap is reported as "no
  result", never waited for.

Useful tokens are counted as fem keeps them: a draw's tokens up to the one that completes its
answer line (or ends the turn, or reaches the limit). The bench prints the ratio of hf to the best
library path; fem's own decode loop earns its place only while that ratio is >= 2.

    .venv/bin/python bench/sample_throughput.py                 # hf, generate, generate_batch, and vllm if .venv-vllm exists
    .venv/bin/python bench/sample_throughput.py --skip-vllm --questions 8
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEMPERATURE = 0.7
KEEP_LOOP_RATIO = 2.0  # fem's loop stays while it is at least this much faster than the library


def cpu_steal() -> tuple[int, int]:
    """(steal, total) jiffies from /proc/stat: on a shared VM, time the hypervisor gave to other
    guests. A run with much steal is slowed unevenly, which skews the ratios."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return fields[7], sum(fields)


def measured(run):
    steal_before, total_before = cpu_steal()
    figures = run()
    steal_after, total_after = cpu_steal()
    figures["steal_percent"] = 100 * (steal_after - steal_before) / max(1, total_after - total_before)
    return figures


# --- fem ---------------------------------------------------------------------------------------


def fem_sample(python: Path, out: Path, args: argparse.Namespace, backend: str) -> dict:
    command = [
        str(python), "-m", "fem_cli", "sample", "--model", "smollm2", "--task", "arc_easy",
        "--split", "validation", "--data-dir", str(args.data_dir), "--limit", str(args.questions),
        "--sampler", "pps", "--num-samples", str(args.num_samples), "--max-new-tokens", str(args.max_new_tokens),
        "--temperature", str(TEMPERATURE), "--backend", backend, "--dtype", args.dtype, "--out", str(out),
    ] + (["--batch-size", str(args.batch_size)] if args.batch_size else [])
    started = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"},
                   stdout=subprocess.DEVNULL)
    summary = json.loads(Path(f"{out}.summary.json").read_text())
    stage = summary["stages"]["pps/hinted"]
    # The hf backend stops at the answer line, so every generated token is a useful one.
    return {"tokens": stage["tokens_generated"], "seconds": stage["wall_seconds"],
            "process_seconds": time.perf_counter() - started}


# --- the library paths, each run in a child process --------------------------------------------


def _prompts(args: argparse.Namespace):
    from fem_cli.jsonl import read_jsonl
    from fem_cli.models import load_model, load_tokenizer, resolve_model
    from fem_cli.prompts import PromptTemplate, build_messages, prompt_token_ids, render
    from fem_cli.records import Question

    model = resolve_model("smollm2")
    tokenizer = load_tokenizer(model)
    lm = load_model(model, dtype=args.dtype)
    questions = read_jsonl(args.data_dir / "arc_easy" / "validation.jsonl", Question)[: args.questions]
    prompts = [
        prompt_token_ids(tokenizer, render(tokenizer, build_messages(question, PromptTemplate(), hint=True)))
        for question in questions
    ]
    labels = sorted({label for question in questions for label in question.labels})
    return tokenizer, lm, prompts, labels


def useful_tokens(tokenizer, generated: list[int], eos_ids: set[int]) -> int:
    """Tokens fem would have kept: up to the one completing the answer line, ending the turn
    (counted, as fem counts it) or reaching the limit."""
    from fem_cli.backends.base import SamplingSettings, finish_text

    settings = SamplingSettings()
    for count, token in enumerate(generated, start=1):
        if token in eos_ids:
            return count
        if finish_text(tokenizer.decode(generated[:count], skip_special_tokens=True), settings)[1]:
            return count
    return len(generated)


def _eos_ids(tokenizer, lm) -> set[int]:
    configured = lm.generation_config.eos_token_id
    ids = {tokenizer.eos_token_id, *(configured if isinstance(configured, list) else [configured])}
    return {i for i in ids if i is not None}


def run_generate(args: argparse.Namespace) -> dict:
    """Batched `model.generate`: left padding, n return sequences, stop strings, same sampling."""
    import torch

    tokenizer, lm, prompts, labels = _prompts(args)
    tokenizer.padding_side = "left"
    eos_ids = _eos_ids(tokenizer, lm)
    stops = [f"Answer: {label}" for label in labels]
    torch.manual_seed(0)
    tokens = 0
    started = time.perf_counter()
    for start in range(0, len(prompts), args.generate_batch):
        batch = tokenizer.pad({"input_ids": prompts[start : start + args.generate_batch]}, return_tensors="pt")
        with torch.inference_mode():
            out = lm.generate(
                **batch, do_sample=True, temperature=TEMPERATURE, top_p=1.0, top_k=0,
                max_new_tokens=args.max_new_tokens, num_return_sequences=args.num_samples,
                stop_strings=stops, tokenizer=tokenizer, pad_token_id=tokenizer.pad_token_id,
            )
        width = batch["input_ids"].shape[1]
        tokens += sum(useful_tokens(tokenizer, row[width:].tolist(), eos_ids) for row in out)
    return {"tokens": tokens, "seconds": time.perf_counter() - started}


def run_generate_batch(args: argparse.Namespace) -> dict:
    """transformers' continuous batching (`generate_batch`): its scheduler and paged cache."""
    import torch
    from transformers import GenerationConfig

    tokenizer, lm, prompts, _ = _prompts(args)
    if not hasattr(lm, "generate_batch"):
        return {"error": "this transformers has no generate_batch"}
    eos_ids = _eos_ids(tokenizer, lm)
    config = GenerationConfig(
        do_sample=True, temperature=TEMPERATURE, top_p=1.0, top_k=0, max_new_tokens=args.max_new_tokens,
        num_return_sequences=args.num_samples, eos_token_id=sorted(eos_ids), pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    started = time.perf_counter()
    with torch.inference_mode():
        results = lm.generate_batch(inputs=prompts, generation_config=config)
    seconds = time.perf_counter() - started
    tokens = sum(useful_tokens(tokenizer, list(result.generated_tokens), eos_ids) for result in results.values())
    return {"tokens": tokens, "seconds": seconds, "sequences": len(results)}


LIBRARY_PATHS = {"generate": run_generate, "generate_batch": run_generate_batch}


def _rss_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def capped_library_path(name: str, args: argparse.Namespace) -> dict:
    """Run one library path in a child process; stop it past --library-timeout seconds or
    --library-max-gb of resident memory, and say so instead of a figure."""
    command = [sys.executable, __file__, "--run-library-path", name, "--data-dir", str(args.data_dir),
               "--questions", str(args.questions), "--num-samples", str(args.num_samples),
               "--max-new-tokens", str(args.max_new_tokens), "--generate-batch", str(args.generate_batch),
               "--dtype", args.dtype]
    child = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                             env={**os.environ, "HF_HUB_OFFLINE": "1"})
    started, peak, stopped = time.perf_counter(), 0, None
    while child.poll() is None:
        peak = max(peak, _rss_bytes(child.pid))
        elapsed = time.perf_counter() - started
        if elapsed > args.library_timeout:
            stopped = f"no result within {args.library_timeout:.0f} s (stopped at {peak / 2**30:.1f} GB)"
        elif peak > args.library_max_gb * 2**30:
            stopped = f"stopped after {elapsed:.0f} s: resident memory passed {args.library_max_gb:.0f} GB"
        if stopped:
            child.kill()
            child.wait()
            return {"error": stopped, "peak_gb": peak / 2**30}
        time.sleep(0.5)
    output = child.stdout.read().strip().splitlines() if child.stdout else []
    if child.returncode != 0 or not output:
        return {"error": f"exited with status {child.returncode}", "peak_gb": peak / 2**30}
    return {**json.loads(output[-1]), "peak_gb": peak / 2**30}


# --- report ------------------------------------------------------------------------------------


def _line(name: str, figures: dict) -> str:
    if "error" in figures:
        return f"{name:>14}: {figures['error']}"
    rate = figures["tokens"] / figures["seconds"]
    memory = f"; peak {figures['peak_gb']:.1f} GB" if "peak_gb" in figures else ""
    return (f"{name:>14}: {rate:8.1f} useful tok/s  ({figures['tokens']} tokens in {figures['seconds']:.1f} s"
            f"{memory}; CPU steal {figures['steal_percent']:.0f}%)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--questions", type=int, default=32)
    parser.add_argument("--num-samples", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--dtype", default="auto", help="weights dtype of every contender (auto: fem's choice for this machine)")
    parser.add_argument("--batch-size", type=int, default=None, help="hf: sequences decoded together (default: fem's)")
    parser.add_argument("--generate-batch", type=int, default=16, help="generate: prompts per call (x --num-samples sequences)")
    parser.add_argument("--library-timeout", type=float, default=600, help="seconds a library path may run")
    parser.add_argument("--library-max-gb", type=float, default=8, help="resident memory a library path may take")
    parser.add_argument("--skip-vllm", action="store_true")
    parser.add_argument("--skip-generate-batch", action="store_true")
    parser.add_argument("--run-library-path", choices=sorted(LIBRARY_PATHS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    if args.run_library_path:
        print(json.dumps(LIBRARY_PATHS[args.run_library_path](args)))
        return
    from fem_cli.runtime import resolve_dtype

    args.dtype, dtype_why = resolve_dtype(args.dtype, "hf")  # one dtype for every contender

    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        results["hf"] = measured(lambda: fem_sample(Path(sys.executable), Path(tmp) / "hf.jsonl", args, "hf"))
        results["generate"] = measured(lambda: capped_library_path("generate", args))
        if not args.skip_generate_batch:
            results["generate_batch"] = measured(lambda: capped_library_path("generate_batch", args))
        vllm_python = ROOT / ".venv-vllm" / "bin" / "python"
        if not args.skip_vllm:
            if not vllm_python.exists():
                sys.exit("no .venv-vllm: run `make setup-vllm`, or pass --skip-vllm")
            results["vllm"] = measured(lambda: fem_sample(vllm_python, Path(tmp) / "vllm.jsonl", args, "vllm"))

    print(f"smollm2 ({args.dtype}: {dtype_why}), ARC-Easy validation, {args.questions} questions x {args.num_samples} PPS draws, "
          f"T {TEMPERATURE}, max {args.max_new_tokens} new tokens")
    for name, figures in results.items():
        print(_line(name, figures))
    rate = {name: f["tokens"] / f["seconds"] for name, f in results.items() if "error" not in f}
    library = {name: rate[name] for name in LIBRARY_PATHS if name in rate}
    if library:
        best = max(library, key=library.get)
        ratio = rate["hf"] / library[best]
        wall = results[best]["seconds"] / results["hf"]["seconds"]
        verdict = "earns its place" if ratio >= KEEP_LOOP_RATIO else "does NOT earn its place"
        print(f"hf / {best} (best library path) = {ratio:.2f}x useful tok/s, {wall:.2f}x less wall time: "
              f"fem's decode loop {verdict} (keep it while >= {KEEP_LOOP_RATIO:.0f}x)")
    else:
        print("no library path gave a result: nothing to compare hf with")
    if "vllm" in rate:
        print(f"vllm / hf = {rate['vllm'] / rate['hf']:.2f}x  (target >= 1.5)")
        print(f"vllm process incl. engine start: {results['vllm']['process_seconds']:.0f} s; "
              f"hf process: {results['hf']['process_seconds']:.0f} s")


if __name__ == "__main__":
    main()
