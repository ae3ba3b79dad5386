"""Benchmark: `fem evaluate --protocol loglik` against lm-evaluation-harness on the same model and data.

Both score the first N ARC-Easy validation questions of ../shared/data with the local SmolLM2 folder
(float32, same batch size, same threads, nothing from the hub): lm-eval through `simple_evaluate`
with `model="hf"` and a task YAML over the local JSONL (written to a temporary folder), fem through
`run_evaluate`. Checks (PASS/FAIL; the exit code is non-zero when a correctness check fails):
  - the same questions, every per-choice log-likelihood within 1e-3 of lm-eval's
  - acc and acc_norm within 0.5 points of lm-eval's
  - speed: fem at least 1.5x faster, best wall time of --repeats runs each in ABBA order
    (a target, reported but not a correctness check)

    .venv/bin/pip install -c /tmp/c.txt lm-eval     # bench-only dependency
    .venv/bin/python bench/eval_loglik.py --limit 200 --batch-size 16
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

# Before any Hugging Face import: nothing may reach the hub.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"

REPO = Path(__file__).resolve().parents[1]
LOGLIK_TOLERANCE = 1e-3
ACCURACY_TOLERANCE = 0.005
SPEEDUP_TARGET = 1.5
TASK_NAME = "fem_bench_arc_easy"
TASK_YAML = """task: {task}
dataset_path: json
dataset_kwargs:
  data_files:
    validation: {data_file}
output_type: multiple_choice
validation_split: validation
doc_to_text: "Question: {{{{question}}}}\\nAnswer:"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: "{{{{labels.index(answer)}}}}"
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
  - metric: acc_norm
    aggregation: mean
    higher_is_better: true
"""


def run_fem(model: str, data_dir: Path, limit: int, batch_size: int, threads: int, out: Path) -> dict:
    from fem_cli.evaluation import EvaluateConfig, run_evaluate
    from fem_cli.jsonl import read_jsonl
    from fem_cli.records import EvalRecord

    cfg = EvaluateConfig(
        model=model, task="arc_easy", split="validation", data_dir=str(data_dir), limit=limit,
        protocol="loglik", batch_size=batch_size, threads=threads, dtype="float32", out=str(out),
    )
    started, cpu_started = time.perf_counter(), time.process_time()
    run_evaluate(cfg, on_status=lambda line: None)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    metrics = json.loads((out / "results.json").read_text())["tasks"]["arc_easy"]["metrics"]
    records = read_jsonl(out / "arc_easy.jsonl", EvalRecord)
    return {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "acc": metrics["accuracy"]["value"],
        "acc_norm": metrics["acc_norm"]["value"],
        "logliks": {record.question_id: record.loglik for record in records},
    }


def run_lm_eval(model: str, data_file: Path, limit: int, batch_size: int, workdir: Path) -> dict:
    import torch
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    (workdir / f"{TASK_NAME}.yaml").write_text(TASK_YAML.format(task=TASK_NAME, data_file=data_file))
    # Indexing lm-eval's task folder is setup, not evaluation: kept out of the timing.
    task_manager = TaskManager(include_path=str(workdir))
    started, cpu_started = time.perf_counter(), time.process_time()
    results = simple_evaluate(
        model="hf",
        model_args=f"pretrained={model},dtype=float32",
        tasks=[TASK_NAME],
        task_manager=task_manager,
        limit=limit,
        batch_size=batch_size,
        device="cuda" if torch.cuda.is_available() else "cpu",
        log_samples=True,
        bootstrap_iters=0,  # fem's interval is 1000 resamples; lm-eval's 100000 would dwarf the scoring
    )
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    scores = results["results"][TASK_NAME]
    return {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "acc": scores["acc,none"],
        "acc_norm": scores["acc_norm,none"],
        "logliks": {
            sample["doc"]["id"]: [float(loglik) for loglik, _greedy in sample["filtered_resps"]]
            for sample in results["samples"][TASK_NAME]
        },
    }


def check(name: str, passed: bool, detail: str) -> bool:
    print(f"{'PASS' if passed else 'FAIL'}  {name}: {detail}")
    return passed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="Local model folder (default: the prepared smollm2).")
    parser.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--limit", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for both (default: all available).")
    parser.add_argument("--repeats", type=int, default=2, help="Runs of each, in ABBA order; the best wall time counts.")
    args = parser.parse_args()
    try:
        import lm_eval  # noqa: F401
    except ImportError:
        print("lm-eval is not installed: .venv/bin/pip install -c /tmp/c.txt lm-eval", file=sys.stderr)
        return 2
    import torch

    from fem_cli.runtime import default_threads
    from fem_cli.models import resolve_model

    model = args.model or resolve_model("smollm2").path
    threads = args.threads or default_threads()
    torch.set_num_threads(threads)
    data_file = (args.data_dir / "arc_easy" / "validation.jsonl").resolve()
    print(f"model {model}; {args.limit} questions of {data_file}; batch size {args.batch_size}; {threads} threads")

    runs: dict[str, list[dict]] = {"fem": [], "lm-eval": []}
    with tempfile.TemporaryDirectory(prefix="fem-bench-") as tmp:
        contenders = {
            "fem": lambda: run_fem(model, args.data_dir, args.limit, args.batch_size, threads, Path(tmp) / "fem"),
            "lm-eval": lambda: run_lm_eval(model, data_file, args.limit, args.batch_size, Path(tmp)),
        }
        # ABBA order and the best time of each: on a shared machine, load that comes and goes
        # during one run would otherwise decide the ratio.
        for round_index in range(args.repeats):
            for name in ("fem", "lm-eval") if round_index % 2 == 0 else ("lm-eval", "fem"):
                runs[name].append(contenders[name]())
                print(f"{name:8} run {round_index + 1}: wall {runs[name][-1]['seconds']:7.1f} s   cpu {runs[name][-1]['cpu_seconds']:7.1f} s")
    fem, harness = runs["fem"][0], runs["lm-eval"][0]
    best = {name: min(run["seconds"] for run in results) for name, results in runs.items()}
    for name, run in (("fem", fem), ("lm-eval", harness)):
        print(f"{name:8} best wall {best[name]:7.1f} s   acc {run['acc']:.4f}   acc_norm {run['acc_norm']:.4f}")
    speedup = best["lm-eval"] / best["fem"]
    print(f"speed-up (lm-eval best wall time / fem best wall time): {speedup:.2f}x")

    same_questions = fem["logliks"].keys() == harness["logliks"].keys()
    ok = check("same questions", same_questions, f"fem {len(fem['logliks'])}, lm-eval {len(harness['logliks'])}")
    diffs = [
        abs(ours - theirs)
        for question_id, values in fem["logliks"].items()
        if len(values) == len(harness["logliks"].get(question_id, []))
        for ours, theirs in zip(values, harness["logliks"][question_id])
    ]
    worst = max(diffs, default=float("inf"))
    ok &= check("per-choice log-likelihoods", same_questions and worst <= LOGLIK_TOLERANCE,
                f"max |diff| {worst:.2e} over {len(diffs)} choices (tolerance {LOGLIK_TOLERANCE:g})")
    for metric in ("acc", "acc_norm"):
        gap = abs(fem[metric] - harness[metric])
        ok &= check(metric, gap <= ACCURACY_TOLERANCE, f"|{fem[metric]:.4f} - {harness[metric]:.4f}| = {gap:.4f} (tolerance {ACCURACY_TOLERANCE})")
    check("speed target (not a correctness check)", speedup >= SPEEDUP_TARGET, f"{speedup:.2f}x (target {SPEEDUP_TARGET}x)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
