"""Iteration 0 taken from a finished evaluation of the same base model (`fem loop --base-eval`).

Every run of a grid (samplers x seeds) starts by evaluating the same base model on the same
questions; greedy decoding makes those evaluations identical, so a grid needs only one. The reused
folder must have been made with this run's own iteration-0 config: only its output folder may
differ, and its seed too when the seed drives nothing but the bootstrap of the confidence intervals
(which stay the original's): greedy decoding of questions in their own order. A shuffled
evaluation draws its questions with the seed, so another seed means other questions, and the
iteration-0 scores would not pair with the run's later iterations.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from fem_cli.errors import FemError
from fem_cli.evaluation.config import EvaluateConfig
from fem_cli.outputs import publish_folder, staging_folder
from fem_cli.provenance import as_jsonable
from fem_cli.runs import results_path


def _seed_changes_only_the_bootstrap(config: EvaluateConfig) -> bool:
    greedy = not config.temperature and config.num_samples == 1
    return greedy and not config.shuffle


def check_reusable(source: Path, wanted: EvaluateConfig) -> None:
    """Refuse a source that is not a finished evaluation made with `wanted` (see above)."""
    path = results_path(source)
    if not path.is_file():
        raise FemError(f"--base-eval {source}: no {path.name} there (not a finished `fem evaluate` folder)")
    try:
        results = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise FemError(f"{path}:{err.lineno}: unreadable results ({err.msg})") from None
    ignored = {"out"} | ({"seed"} if _seed_changes_only_the_bootstrap(wanted) else set())
    theirs, ours = results.get("config", {}), as_jsonable(wanted)
    differ = sorted(key for key in set(theirs) | set(ours) if key not in ignored and theirs.get(key) != ours.get(key))
    if differ:
        shown = ", ".join(f"{key}: {theirs.get(key)!r} there, {ours.get(key)!r} here" for key in differ)
        raise FemError(f"--base-eval {source}: made with another evaluation config ({shown})")


def reuse_evaluation(source: Path, wanted: EvaluateConfig, target: Path) -> None:
    """Copy a checked evaluation folder to `target` (whole or not at all)."""
    check_reusable(source, wanted)
    with staging_folder(target) as staging:
        shutil.copytree(source, staging, dirs_exist_ok=True)
        publish_folder(staging, target)  # replaces what an interrupted evaluation left there
