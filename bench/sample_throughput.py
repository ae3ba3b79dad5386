"""Generated tokens/s of `fem sample` (hf and vllm backends) against a naive baseline, same run.

The baseline is what one writes first: one question at a time, one `model.generate` call per
sample, no early stop. fem runs with its defaults (hf: float32, batch of 64 sequences). fem's figures are the sampling stage's own (engine start-up excluded, as
it is paid once per run); the baseline runs on the first --naive-questions questions only (it is
~10x slower), which is enough for a rate.

    .venv/bin/python bench/sample_throughput.py            # hf + naive, and vllm if .venv-vllm exists
    .venv/bin/python bench/sample_throughput.py --skip-vllm

Targets: hf >= 6x the naive loop; vllm >= 1.5x hf.
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


def fem_sample(python: Path, out: Path, args: argparse.Namespace, backend: str) -> dict:
    command = [
        str(python), "-m", "fem_cli", "sample", "--model", "smollm2", "--task", "arc_easy",
        "--split", "validation", "--data-dir", str(args.data_dir), "--limit", str(args.questions),
        "--sampler", "pps", "--num-samples", str(args.num_samples), "--max-new-tokens", str(args.max_new_tokens),
        "--temperature", "0.7", "--backend", backend, "--out", str(out),
    ] + (["--batch-size", str(args.batch_size)] if args.batch_size else [])
    started = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"},
                   stdout=subprocess.DEVNULL)
    summary = json.loads(Path(f"{out}.summary.json").read_text())
    stage = summary["stages"]["pps/hinted"]
    return {"tokens": stage["tokens_generated"], "seconds": stage["wall_seconds"],
            "tok_s": stage["tokens_per_second"], "process_seconds": time.perf_counter() - started}


def naive_baseline(args: argparse.Namespace) -> dict:
    import torch

    from fem_cli.jsonl import read_jsonl
    from fem_cli.models import load_model, load_tokenizer, resolve_model
    from fem_cli.prompts import PromptTemplate, build_messages, prompt_token_ids, render
    from fem_cli.records import Question

    model = resolve_model("smollm2")
    tokenizer, lm = load_tokenizer(model), load_model(model)
    questions = read_jsonl(args.data_dir / "arc_easy" / "validation.jsonl", Question)[: args.naive_questions]
    tokens = 0
    started = time.perf_counter()
    for question in questions:
        ids = prompt_token_ids(tokenizer, render(tokenizer, build_messages(question, PromptTemplate(), hint=True)))
        for sample in range(args.num_samples):
            torch.manual_seed(sample)
            out = lm.generate(torch.tensor([ids]), do_sample=True, temperature=0.7, top_p=1.0,
                              max_new_tokens=args.max_new_tokens, pad_token_id=tokenizer.pad_token_id)
            tokens += out.shape[1] - len(ids)
    seconds = time.perf_counter() - started
    return {"tokens": tokens, "seconds": seconds, "tok_s": tokens / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--questions", type=int, default=64)
    parser.add_argument("--num-samples", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=None, help="hf: sequences decoded together (default: fem's)")
    parser.add_argument("--naive-questions", type=int, default=4)
    parser.add_argument("--skip-vllm", action="store_true")
    args = parser.parse_args()

    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        results["naive"] = measured(lambda: naive_baseline(args))
        results["hf"] = measured(lambda: fem_sample(Path(sys.executable), Path(tmp) / "hf.jsonl", args, "hf"))
        vllm_python = ROOT / ".venv-vllm" / "bin" / "python"
        if not args.skip_vllm:
            if not vllm_python.exists():
                sys.exit("no .venv-vllm: run `make setup-vllm`, or pass --skip-vllm")
            results["vllm"] = measured(lambda: fem_sample(vllm_python, Path(tmp) / "vllm.jsonl", args, "vllm"))

    print(f"smollm2, ARC-Easy validation, pps, {args.num_samples} samples/question, max {args.max_new_tokens} new tokens")
    for name, figures in results.items():
        scope = f"{args.naive_questions} questions" if name == "naive" else f"{args.questions} questions"
        print(f"{name:>6}: {figures['tok_s']:8.1f} generated tok/s  ({figures['tokens']} tokens in {figures['seconds']:.1f} s, {scope}; CPU steal {figures['steal_percent']:.0f}%)")
    print(f"hf / naive   = {results['hf']['tok_s'] / results['naive']['tok_s']:.2f}x  (target >= 6)")
    if "vllm" in results:
        print(f"vllm / hf    = {results['vllm']['tok_s'] / results['hf']['tok_s']:.2f}x  (target >= 1.5)")
        print(f"vllm process incl. engine start: {results['vllm']['process_seconds']:.0f} s; hf process: {results['hf']['process_seconds']:.0f} s")


if __name__ == "__main__":
    main()
