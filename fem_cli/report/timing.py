"""Where a run's wall time went: per stage kind, the seconds its processes spent starting (process
start and the command-line imports) and loading (weights, the imports they need, a vLLM engine),
against the stage's whole wall time, from `run.json` (fem_cli.timings, copied there by the loop).

    rows = time_rows({"demo": read_run(Path("runs/demo"))})
"""

from __future__ import annotations

from typing import Any, Mapping

from fem_cli.runs import STAGES

STAGE_KINDS = ("evaluate", *(stage for stage in STAGES if stage != "evaluate"))
HEADER = ["run", "stage", "processes", "wall", "start-up", "loading", "start-up + loading share"]
CAPTION = (
    "Start-up: from a stage's process start to its command (interpreter and fem's command-line imports). "
    "Loading: weights, the libraries they need and a vLLM engine. Share: (start-up + loading) / wall. "
    "Stages reused from another run (--base-eval) count 0 s and are not counted as processes; stages "
    "recorded before fem measured start-up are left out of the shares."
)


def _share(part: float, whole: float) -> str:
    return f"{part / whole:.1%}" if whole > 0 else "–"


def time_rows(records: Mapping[str, dict[str, Any]]) -> list[list[str]]:
    """One row per run and stage kind, then the run's total. Runs without a measured stage are skipped."""
    body = []
    for name, record in records.items():
        measured = [
            (key.split("/")[1], stage) for key, stage in record.get("stages", {}).items()
            if stage.get("status") == "done" and stage.get("load_seconds") is not None and "reused_from" not in stage
        ]
        if not measured:
            continue
        totals = [0, 0.0, 0.0, 0.0]
        for kind in STAGE_KINDS:
            stages = [stage for stage_kind, stage in measured if stage_kind == kind]
            if not stages:
                continue
            wall = sum(stage["seconds"] for stage in stages)
            startup = sum(stage.get("startup_seconds") or 0.0 for stage in stages)
            load = sum(stage["load_seconds"] for stage in stages)
            for i, value in enumerate((len(stages), wall, startup, load)):
                totals[i] += value
            body.append([name, kind, str(len(stages)), f"{wall:.0f} s", f"{startup:.0f} s", f"{load:.0f} s", _share(startup + load, wall)])
        count, wall, startup, load = totals
        body.append([name, "all", str(count), f"{wall:.0f} s", f"{startup:.0f} s", f"{load:.0f} s", _share(startup + load, wall)])
    return body
