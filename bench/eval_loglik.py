"""Benchmark: `fem evaluate --protocol loglik` against lm-evaluation-harness on the same model and data.

Both score the same questions of ../shared/data (ARC-Easy and MMLU validation; all of them by
default) with the local SmolLM2 folder (float32, same batch size, same threads, nothing from the
hub): lm-eval through `simple_evaluate` with `model="hf"` and a task YAML over the local JSONL in
fem's format for the task (lm-eval's own: ARC's "Question: ...\\nAnswer:", MMLU's lettered choices
scored by their letters), fem through `run_evaluate`. Each run is a process of its own, so its peak
resident memory is its own (os.wait4); its wall time covers the model load and the scoring, not
the imports. Checks (PASS/FAIL; the exit code is non-zero when a correctness check fails):
  - the same questions, every per-choice log-likelihood within 1e-3 of lm-eval's
  - acc and acc_norm within 0.5 points of lm-eval's
  - speed: fem at most half of lm-eval's wall time, best of --repeats runs each in ABBA order
    (a target, reported but not a correctness check)

    .venv/bin/pip install -c constraints/cpu.txt lm-eval     # bench-only dependency
    .venv/bin/python bench/eval_loglik.py                                  # all of ARC-Easy and MMLU validation
    .venv/bin/python bench/eval_loglik.py --tasks arc_easy --limit 200 --threads 1
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

# Before any Hugging Face import: nothing may reach the hub.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"

REPO = Path(__file__).resolve().parents[1]
LOGLIK_TOLERANCE = 1e-3
ACCURACY_TOLERANCE = 0.005
SPEEDUP_TARGET = 2.0
TASK_YAML = """task: {task}
dataset_path: json
dataset_kwargs:
  data_files:
    validation: {data_file}
output_type: multiple_choice
validation_split: validation
doc_to_text: "{doc_to_text}"
doc_to_choice: "{doc_to_choice}"
doc_to_target: "{{{{labels.index(answer)}}}}"
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
  - metric: acc_norm
    aggregation: mean
    higher_is_better: true
"""
# lm-eval's formats (tasks/arc, tasks/mmlu/default) as Jinja over the normalized JSONL. MMLU's
# per-subject `description` is put in the text: zero-shot, lm-eval prepends it to the context.
FORMATS = {
    "arc_easy": ("Question: {{question}}\\nAnswer:", "{{choices}}"),
    "mmlu": (
        "The following are multiple choice questions (with answers) about {{subject.replace('_', ' ')}}.\\n\\n"
        "{{question.strip()}}\\nA. {{choices[0]}}\\nB. {{choices[1]}}\\nC. {{choices[2]}}\\nD. {{choices[3]}}\\nAnswer:",
        "{{labels}}",
    ),
}


def run_fem(args: argparse.Namespace, out: Path) -> dict:
    from fem_cli.evaluation import EvaluateConfig, run_evaluate
    from fem_cli.jsonl import read_jsonl
    from fem_cli.records import EvalRecord

    cfg = EvaluateConfig(
        model=args.model, task=args.task, split="validation", data_dir=str(args.data_dir), limit=args.limit or None,
        protocol="loglik", batch_size=args.batch_size, threads=args.threads, dtype="float32", out=str(out),
    )
    started = time.perf_counter()
    run_evaluate(cfg, on_status=lambda line: None)
    seconds = time.perf_counter() - started
    metrics = json.loads((out / "results.json").read_text())["tasks"][args.task]["metrics"]
    records = read_jsonl(out / f"{args.task}.jsonl", EvalRecord)
    return {
        "seconds": seconds,
        "acc": metrics["accuracy"]["value"],
        "acc_norm": metrics["acc_norm"]["value"],
        "logliks": {record.question_id: record.loglik for record in records},
    }


def run_lm_eval(args: argparse.Namespace, workdir: Path) -> dict:
    import torch
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    name = f"fem_bench_{args.task}"
    doc_to_text, doc_to_choice = FORMATS[args.task]
    data_file = (args.data_dir / args.task / "validation.jsonl").resolve()
    (workdir / f"{name}.yaml").write_text(
        TASK_YAML.format(task=name, data_file=data_file, doc_to_text=doc_to_text, doc_to_choice=doc_to_choice)
    )
    # Indexing lm-eval's task folder is setup, not evaluation: kept out of the timing.
    task_manager = TaskManager(include_path=str(workdir))
    started = time.perf_counter()
    results = simple_evaluate(
        model="hf",
        model_args=f"pretrained={args.model},dtype=float32",
        tasks=[name],
        task_manager=task_manager,
        limit=args.limit or None,
        batch_size=args.batch_size,
        device="cuda" if torch.cuda.is_available() else "cpu",
        log_samples=True,
        bootstrap_iters=0,  # fem's interval is 1000 resamples; lm-eval's 100000 would dwarf the scoring
    )
    seconds = time.perf_counter() - started
    scores = results["results"][name]
    return {
        "seconds": seconds,
        "acc": scores["acc,none"],
        "acc_norm": scores["acc_norm,none"],
        "logliks": {
            sample["doc"]["id"]: [float(loglik) for loglik, _greedy in sample["filtered_resps"]]
            for sample in results["samples"][name]
        },
    }


def worker(args: argparse.Namespace) -> int:
    """One contender on one task, in this process; its figures go to --result as JSON."""
    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="fem-bench-") as tmp:
        run = run_fem(args, Path(tmp) / "fem") if args.worker == "fem" else run_lm_eval(args, Path(tmp))
    Path(args.result).write_text(json.dumps(run))
    return 0


def measure(name: str, args: argparse.Namespace, task: str, result: Path) -> dict:
    """Run one contender in a child process: its figures and its peak resident memory."""
    command = [
        sys.executable, __file__, "--worker", name, "--result", str(result), "--task", task,
        "--model", args.model, "--data-dir", str(args.data_dir), "--limit", str(args.limit),
        "--batch-size", str(args.batch_size), "--threads", str(args.threads),
    ]
    child = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{name} on {task} failed (exit {os.waitstatus_to_exitcode(status)})")
    run = json.loads(result.read_text())
    run["peak_gb"] = usage.ru_maxrss / 2**20  # kilobytes on Linux
    return run


def check(name: str, passed: bool, detail: str) -> bool:
    print(f"{'PASS' if passed else 'FAIL'}  {name}: {detail}")
    return passed


def compare(task: str, runs: dict[str, list[dict]]) -> bool:
    fem, harness = runs["fem"][0], runs["lm-eval"][0]
    best = {name: min(run["seconds"] for run in results) for name, results in runs.items()}
    peak = {name: max(run["peak_gb"] for run in results) for name, results in runs.items()}
    for name, run in (("fem", fem), ("lm-eval", harness)):
        print(f"{task:9} {name:8} best wall {best[name]:7.1f} s   peak {peak[name]:5.2f} GB   acc {run['acc']:.4f}   acc_norm {run['acc_norm']:.4f}")
    share = best["fem"] / best["lm-eval"]
    print(f"{task:9} fem wall / lm-eval wall: {share:.2f} (speed-up {1 / share:.2f}x); fem peak / lm-eval peak: {peak['fem'] / peak['lm-eval']:.2f}")
    same_questions = fem["logliks"].keys() == harness["logliks"].keys()
    ok = check(f"{task}: same questions", same_questions, f"fem {len(fem['logliks'])}, lm-eval {len(harness['logliks'])}")
    diffs = [
        abs(ours - theirs)
        for question_id, values in fem["logliks"].items()
        if len(values) == len(harness["logliks"].get(question_id, []))
        for ours, theirs in zip(values, harness["logliks"][question_id])
    ]
    worst = max(diffs, default=float("inf"))
    ok &= check(f"{task}: per-choice log-likelihoods", same_questions and worst <= LOGLIK_TOLERANCE,
                f"max |diff| {worst:.2e} over {len(diffs)} choices (tolerance {LOGLIK_TOLERANCE:g})")
    for metric in ("acc", "acc_norm"):
        gap = abs(fem[metric] - harness[metric])
        ok &= check(f"{task}: {metric}", gap <= ACCURACY_TOLERANCE, f"|{fem[metric]:.4f} - {harness[metric]:.4f}| = {gap:.4f} (tolerance {ACCURACY_TOLERANCE})")
    check(f"{task}: speed target (not a correctness check)", share <= 1 / SPEEDUP_TARGET,
          f"fem takes {share:.2f} of lm-eval's wall time (target <= {1 / SPEEDUP_TARGET:.2f})")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="Local model folder (default: the prepared smollm2).")
    parser.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--tasks", default="arc_easy,mmlu", help=f"Comma-separated, of {', '.join(FORMATS)}.")
    parser.add_argument("--limit", type=int, default=0, help="First N validation questions of each task (0: all).")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for both (default: all available).")
    parser.add_argument("--repeats", type=int, default=2, help="Runs of each, in ABBA order; the best wall time counts.")
    parser.add_argument("--worker", choices=("fem", "lm-eval"), help=argparse.SUPPRESS)
    parser.add_argument("--task", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    try:
        import lm_eval  # noqa: F401
    except ImportError:
        print("lm-eval is not installed: .venv/bin/pip install -c constraints/cpu.txt lm-eval", file=sys.stderr)
        return 2
    from fem_cli.models import resolve_model
    from fem_cli.runtime import default_threads

    tasks = args.tasks.split(",")
    unknown = sorted(set(tasks) - set(FORMATS))
    if unknown:
        parser.error(f"unknown task(s) {', '.join(unknown)}: choose from {', '.join(FORMATS)}")
    args.model = args.model or str(resolve_model("smollm2").path)
    args.threads = args.threads or default_threads()
    print(f"model {args.model}; {args.limit or 'all'} validation questions of {', '.join(tasks)}; "
          f"batch size {args.batch_size}; {args.threads} threads; best of {args.repeats} in ABBA order")
    ok = True
    with tempfile.TemporaryDirectory(prefix="fem-bench-") as tmp:
        for task in tasks:
            runs: dict[str, list[dict]] = {"fem": [], "lm-eval": []}
            # ABBA order and the best time of each: on a shared machine, load that comes and goes
            # during one run would otherwise decide the ratio.
            for round_index in range(args.repeats):
                for name in ("fem", "lm-eval") if round_index % 2 == 0 else ("lm-eval", "fem"):
                    runs[name].append(measure(name, args, task, Path(tmp) / f"{task}-{name}-{round_index}.json"))
                    run = runs[name][-1]
                    print(f"{task:9} {name:8} run {round_index + 1}: wall {run['seconds']:7.1f} s   peak {run['peak_gb']:5.2f} GB", flush=True)
            ok &= compare(task, runs)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
