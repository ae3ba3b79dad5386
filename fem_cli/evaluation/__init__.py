"""`fem evaluate`: accuracy and calibration of a model on multiple-choice and judge benchmarks, two ways.

  generative  the training prompt, a rationale and a final `Answer: X` (greedy or majority vote)
  loglik      lm-evaluation-harness's multiple-choice log-likelihood protocol (acc, acc_norm)

Modules: `config` (options), `generative` and `loglik` (the protocols), `circular` (the
answer distribution, the constant baseline, circular evaluation), `metrics` (accuracy, bootstrap interval,
majority vote, per-subject averages, ECE and Brier, circular summaries), `reliability` (the
reliability diagram PNG), `run` (tasks in, results folder out).

    from fem_cli.evaluation import EvaluateConfig, run_evaluate
    run_evaluate(EvaluateConfig(model="smollm2", task="arc_easy", protocol="loglik", out="eval/base"))
"""

from fem_cli.evaluation.config import EvaluateConfig
from fem_cli.evaluation.run import run_evaluate
from fem_cli.runs import RESULTS_FILE

__all__ = ["EvaluateConfig", "RESULTS_FILE", "run_evaluate"]
