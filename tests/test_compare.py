"""`fem report` comparing runs: the paired statistics against hand computations, seed grouping,
matching questions, and the report end to end through the CLI on hand-built run folders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from typer.testing import CliRunner

from fem_cli.cli.main import app
from fem_cli.errors import FemError
from fem_cli.evaluation.metrics import accuracy_summary
from fem_cli.loop.config import LoopConfig
from fem_cli.provenance import as_jsonable
from fem_cli.records import EvalRecord
from fem_cli.report.compare import compare_runs, group_runs, load_run
from fem_cli.report.stats import holm, mcnemar_exact, paired_bootstrap

runner = CliRunner()

BASE = "1111100000"  # iteration 0: the base model, the same for every sampler of one seed
# Iteration 1 of the two samplers under seeds 0 and 1, one character per question (1 = correct).
ITERATION_1 = {("pps", 0): "1111111100", ("rs", 0): "1111000001", ("pps", 1): "1111110110", ("rs", 1): "1110000000"}


def bits(text: str) -> list[bool]:
    return [c == "1" for c in text]


def make_run(root: Path, sampler: str, seed: int, outcomes: dict[int, str], verified: float | None = None,
             question_ids: list[str] | None = None, working: dict[int, float] | None = None, **config) -> Path:
    """A finished run folder as `fem loop` leaves it, written by hand: run.json, each iteration's
    eval records and results.json, and the E-step's summary and filter stats."""
    cfg = LoopConfig(name=f"m-arith-{sampler}-s{seed}", model="m", task="arith", sampler=sampler, seed=seed,
                     iterations=max(outcomes), **config)
    folder = root / cfg.name
    stages = {"0/evaluate": {"status": "done", "seconds": 60.0}}
    for k, text in outcomes.items():
        correct = bits(text)
        ids = question_ids or [f"q{i}" for i in range(len(correct))]
        eval_dir = folder / f"iter-{k}" / "eval"
        eval_dir.mkdir(parents=True)
        records = [
            EvalRecord(task="arith", question_id=qid, protocol="generative", prompt="p", outputs=["o"],
                       extracted=["A"], prediction="A", gold="A" if ok else "B", correct=ok)
            for qid, ok in zip(ids, correct)
        ]
        (eval_dir / "arith.jsonl").write_text("".join(r.model_dump_json() + "\n" for r in records))
        metrics = {"accuracy": accuracy_summary(correct, seed=0)}
        if working is not None:  # the share of questions right by working that reaches the answer
            metrics["working_consistent_accuracy"] = {"value": working[k], "ci_low": 0.0, "ci_high": 1.0, "n": len(correct)}
        results = {"tasks": {"arith": {"file": "arith.jsonl", "metrics": metrics}}}
        (eval_dir / "results.json").write_text(json.dumps(results))
        if k == 0:
            continue
        accepted = 6 if sampler == "pps" else 3
        # pps records the consistent share (3 of its 6 accepted draws); rs is an older summary without it.
        consistent = {"consistent": 3, "inconsistent": 2} if sampler == "pps" else {}
        checked = {} if verified is None else {"verified": round(verified * accepted)}
        summary = {"stages": {f"{sampler}/self": {"samples": 10, "accepted": accepted, "mean_rationale_tokens": 40.0 + seed, **consistent, **checked}}}
        (folder / f"iter-{k}" / "samples.jsonl.summary.json").write_text(json.dumps(summary))
        stats = {"kept": accepted, "questions_with_kept": accepted}
        (folder / f"iter-{k}" / "train.jsonl.stats.json").write_text(json.dumps(stats))
        stages.update({f"{k}/sample": {"status": "done", "seconds": 120.0}, f"{k}/filter": {"status": "done", "seconds": 1.0},
                       f"{k}/finetune": {"status": "done", "seconds": 240.0}, f"{k}/evaluate": {"status": "done", "seconds": 59.0}})
    record = {"name": cfg.name, "status": "done", "config": as_jsonable(cfg), "stages": stages}
    (folder / "run.json").write_text(json.dumps(record))
    return folder


@pytest.fixture
def grid(tmp_path) -> dict[tuple[str, int], Path]:
    return {
        (sampler, seed): make_run(tmp_path, sampler, seed, {0: BASE, 1: ITERATION_1[sampler, seed]},
                                  verified=0.5 if sampler == "pps" else None)
        for sampler in ("rs", "pps") for seed in (0, 1)
    }


def test_mcnemar_exact_matches_the_hand_computation():
    # 9 discordant pairs one way, 2 the other: P(X <= 2) for X ~ Bin(11, 1/2) is (1 + 11 + 55) / 2^11,
    # doubled for two sides.
    assert mcnemar_exact(9, 2) == pytest.approx(2 * 67 / 2048)
    assert mcnemar_exact(2, 9) == mcnemar_exact(9, 2)
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(6, 1) == pytest.approx(2 * (1 + 7) / 128)


def test_holm_adjusts_as_by_hand():
    # sorted 0.01, 0.03, 0.04 -> 3 x 0.01, 2 x 0.03, max(1 x 0.04, 0.06); back in input order
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.9]) == [1.0, 1.0]
    assert holm([]) == []


def test_paired_bootstrap_covers_the_true_difference_and_is_seeded():
    rng = np.random.default_rng(7)
    true_difference, redrawn = 0.15, 0.4
    covered = 0
    for _ in range(40):
        # B right with probability 0.5; A copies B except on 40 % of the questions, where it is
        # right with probability 0.5 + 0.15 / 0.4: A - B = 0.4 x 0.375 = 0.15 in expectation.
        b = rng.random(300) < 0.5
        a = np.where(rng.random(300) < redrawn, rng.random(300) < 0.5 + true_difference / redrawn, b)
        low, high = paired_bootstrap(a, b, seed=0, resamples=999)
        covered += low <= true_difference <= high
    assert covered >= 34  # 95 % nominal; 34 of 40 leaves room for chance
    # Scores averaged over seeds are fractions: continuous values show any change of seed.
    x, y = rng.random(60), rng.random(60)
    assert paired_bootstrap(x, y, seed=3) == paired_bootstrap(x, y, seed=3)
    assert paired_bootstrap(x, y, seed=3) != paired_bootstrap(x, y, seed=4)
    # Resampling pairs is what makes it narrow: A and B agree on most questions (the last sample
    # above), and resampling them apart would add the spread of question difficulty twice.
    unpaired = stats.bootstrap((a, b), lambda u, v, axis: u.mean(axis) - v.mean(axis), method="percentile",
                               n_resamples=999, rng=np.random.default_rng(0)).confidence_interval
    assert high - low < 0.8 * (unpaired.high - unpaired.low)


def test_runs_differing_only_in_seed_are_grouped(grid, tmp_path):
    groups = group_runs([load_run(grid[key]) for key in [("rs", 1), ("rs", 0), ("pps", 0), ("pps", 1)]])
    assert [(g.label, g.seeds) for g in groups] == [("m-arith-rs", [0, 1]), ("m-arith-pps", [0, 1])]
    other = make_run(tmp_path / "lr", "rs", 0, {0: BASE, 1: BASE}, finetune={"learning_rate": 1e-4})
    assert len(group_runs([load_run(grid["rs", 0]), load_run(other)])) == 2
    twin = make_run(tmp_path / "twin", "rs", 0, {0: BASE, 1: BASE})
    with pytest.raises(FemError, match="the same config and seed 0"):
        group_runs([load_run(grid["rs", 0]), load_run(twin)])


def test_seeds_pool_by_question(grid):
    comparison = compare_runs([grid[key] for key in [("rs", 0), ("rs", 1), ("pps", 0), ("pps", 1)]], seed=0)
    # Iteration 0 (the same base model, identical answers) is not tested.
    [test] = comparison.tests
    assert (test.a, test.b, test.iteration, test.seeds, test.questions) == ("m-arith-pps", "m-arith-rs", 1, [0, 1], 10)
    # Per question over both seeds, pps scores higher on q3..q8 and rs on q9: 6 against 1.
    assert (test.a_better, test.b_better) == (6, 1)
    assert test.accuracy_a == pytest.approx(16 / 20) and test.accuracy_b == pytest.approx(8 / 20)
    assert test.difference == pytest.approx(0.4) and test.ci_low <= 0.4 <= test.ci_high
    assert test.p_value == pytest.approx(mcnemar_exact(6, 1)) and test.p_holm == test.p_value


def test_one_seed_gives_mcnemar_on_the_discordant_pairs(grid):
    [test] = compare_runs([grid["rs", 0], grid["pps", 0]]).tests
    # seed 0: pps alone right on q4..q7, rs alone on q9
    assert (test.a_better, test.b_better) == (4, 1)
    assert test.p_value == pytest.approx(2 * (1 + 5) / 32)


def test_different_question_sets_are_refused(grid, tmp_path):
    other = make_run(tmp_path / "other", "pps", 0, {0: BASE, 1: BASE}, question_ids=[f"x{i}" for i in range(10)])
    with pytest.raises(FemError, match="evaluated on different questions \\(10 and 10, 0 in common\\)"):
        compare_runs([grid["rs", 0], other])


def test_report_compares_runs_end_to_end(grid, tmp_path):
    folders = [str(grid[key]) for key in [("rs", 0), ("rs", 1), ("pps", 0), ("pps", 1)]]
    result = runner.invoke(app, ["report", *folders, "--out", str(tmp_path / "report")])
    assert result.exit_code == 0, result.output
    assert "paired comparison" in result.output
    report = (tmp_path / "report" / "report.md").read_text()
    assert "## Runs grouped by seed" in report and "## Paired comparison" in report
    rows = {line.split(" | ")[0].lstrip("| ") + "/" + line.split(" | ")[2]: line for line in report.splitlines()
            if line.startswith("| m-arith-")}
    # mean over seeds, ± the standard deviation over seeds; verified share of the accepted draws from the sample summary or –;
    # consistent share of the accepted draws from the sample summary or –
    assert "| 80.0% ± 0.0 | 60.0% ± 0.0 | 50.0% ± 0.0 | 50.0% ± 0.0 | 40.5 ± 0.7 | 2.0 min | 7.0 min |" in rows["m-arith-pps/1"]
    assert "| 40.0% ± 14.1 | 30.0% ± 0.0 | – | – |" in rows["m-arith-rs/1"]
    assert "| arith | 1 | m-arith-pps | m-arith-rs | 0 1 | 10 | 80.0% | 40.0% | +40.0 pts [" in report
    assert "| 6 / 1 | 0.125 | 0.125 | no |" in report
    assert "Holm's method over all 1 tests" in report
    assert (tmp_path / "report" / "comparison.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "![comparison](comparison.png)" in report
    first = json.loads((tmp_path / "report" / "comparison.json").read_text())
    runner.invoke(app, ["report", *folders, "--out", str(tmp_path / "report")])
    assert json.loads((tmp_path / "report" / "comparison.json").read_text()) == first
    assert first["correction"] == "holm" and first["comparisons"][0]["a_better"] == 6


def test_report_refuses_runs_on_different_questions_and_writes_nothing(grid, tmp_path):
    other = make_run(tmp_path / "other", "pps", 0, {0: BASE, 1: BASE}, question_ids=[f"x{i}" for i in range(10)])
    result = runner.invoke(app, ["report", str(grid["rs", 0]), str(other), "--out", str(tmp_path / "report")])
    assert result.exit_code == 2 and "evaluated on different questions" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "report").exists()


def test_groups_table_shows_working_consistent_accuracy_where_evaluations_read_it(tmp_path):
    folders = [make_run(tmp_path, "pps", seed, {0: BASE, 1: ITERATION_1["pps", seed]}, working={0: 0.3, 1: 0.2 + seed / 10})
               for seed in (0, 1)]
    folders += [make_run(tmp_path, "rs", seed, {0: BASE, 1: ITERATION_1["rs", seed]}) for seed in (0, 1)]
    result = runner.invoke(app, ["report", *map(str, folders), "--out", str(tmp_path / "report")])
    assert result.exit_code == 0, result.output
    report = (tmp_path / "report" / "report.md").read_text()
    assert "| run | seeds | iteration | arith accuracy | arith working-consistent accuracy | acceptance |" in report
    rows = [line for line in report.splitlines() if line.startswith("| m-arith-")]
    assert any(line.startswith("| m-arith-pps | 0 1 | 1 | 80.0% ± 0.0 | 25.0% ± 7.1 |") for line in rows), rows
    assert any(line.startswith("| m-arith-rs | 0 1 | 1 | 40.0% ± 14.1 | – |") for line in rows), rows


def test_each_group_is_tested_against_its_own_base_model(grid, tmp_path):
    folders = [str(grid[key]) for key in [("rs", 0), ("rs", 1), ("pps", 0), ("pps", 1)]]
    comparison = compare_runs(list(map(Path, folders)))
    # BASE 1111100000; pps iteration 1: 1111111100 (seed 0) and 1111110110 (seed 1): per question the
    # mean over seeds, A better on questions 5, 6, 7, 8 and on none worse.
    gains = {g.a: g for g in comparison.gains}
    assert set(gains) == {"m-arith-rs", "m-arith-pps"} and {g.b for g in comparison.gains} == {"base (iteration 0)"}
    pps = gains["m-arith-pps"]
    assert (pps.iteration, pps.seeds, pps.questions) == (1, [0, 1], 10)
    assert (pps.accuracy_b, pps.difference) == (pytest.approx(0.5), pytest.approx(0.3))
    assert (pps.a_better, pps.b_better) == (4, 0) and pps.p_value == pytest.approx(0.125)
    assert 0 < pps.ci_low <= pps.difference <= pps.ci_high
    # rs: 1111000001 and 1110000000 against 1111100000: worse on questions 3 and 4, better on 9.
    assert (gains["m-arith-rs"].a_better, gains["m-arith-rs"].b_better) == (1, 2)
    result = runner.invoke(app, ["report", *folders, "--out", str(tmp_path / "report")])
    assert result.exit_code == 0, result.output
    report = (tmp_path / "report" / "report.md").read_text()
    assert "## Gain over the base model" in report
    assert "| arith | 1 | m-arith-pps | base (iteration 0) | 0 1 | 10 | 80.0% | 50.0% | +30.0 pts [" in report
    saved = json.loads((tmp_path / "report" / "comparison.json").read_text())["gains_over_base"]
    assert {g["a"] for g in saved} == {"m-arith-rs", "m-arith-pps"}
