"""`fem loop --base-eval`: an evaluation of another seed is reused only where the seed changes
nothing but the bootstrap of its intervals (greedy, questions in their own order)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from fem_cli.errors import FemError
from fem_cli.evaluation.config import EvaluateConfig
from fem_cli.loop.reuse import check_reusable
from fem_cli.provenance import as_jsonable
from fem_cli.runs import results_path


def finished_evaluation(folder: Path, config: EvaluateConfig) -> Path:
    folder.mkdir()
    results_path(folder).write_text(json.dumps({"config": as_jsonable(config)}))
    return folder


BASE = EvaluateConfig(model="smollm2", task="arith", limit=20, seed=0, out="a")


def test_greedy_evaluation_in_question_order_is_reused_across_seeds(tmp_path):
    source = finished_evaluation(tmp_path / "eval", BASE)
    check_reusable(source, dataclasses.replace(BASE, seed=1, out="b"))


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"shuffle": True}, id="shuffled: the seed picks the questions"),
        pytest.param({"temperature": 0.7}, id="sampled: the seed drives the draws"),
    ],
)
def test_evaluation_where_the_seed_matters_is_refused_for_another_seed(tmp_path, changes):
    made = dataclasses.replace(BASE, **changes)
    source = finished_evaluation(tmp_path / "eval", made)
    with pytest.raises(FemError, match=r"made with another evaluation config \(seed: 0 there, 1 here\)"):
        check_reusable(source, dataclasses.replace(made, seed=1, out="b"))
    check_reusable(source, dataclasses.replace(made, out="b"))  # same seed: the same evaluation, reused
