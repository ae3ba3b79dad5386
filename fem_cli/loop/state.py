"""`run.json`: the record and the resume point of one EM run.

It holds the resolved loop config, provenance, and the status and timing of every stage. A stage
counts as finished only once its process exited 0 and this file says so (rewritten atomically
after each change), so a run killed at any moment resumes at the first unfinished stage.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
from pathlib import Path
from typing import Any

from fem_cli.errors import FemError
from fem_cli.jsonl import write_json
from fem_cli.loop.config import RESUMABLE, LoopConfig
from fem_cli.provenance import as_jsonable, provenance
from fem_cli.runs import run_file


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _changed_keys(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    keys = (set(old) | set(new)) - RESUMABLE
    return sorted(key for key in keys if old.get(key) != new.get(key))


@dataclasses.dataclass
class RunState:
    path: Path
    record: dict[str, Any]

    @classmethod
    def open(cls, cfg: LoopConfig) -> "RunState":
        """The existing run of this name (refused if its config differs) or a new one."""
        path = run_file(cfg.run_dir)
        config = as_jsonable(cfg)
        if path.is_file():
            try:
                record = json.loads(path.read_text())
            except json.JSONDecodeError as err:
                raise FemError(f"{path}:{err.lineno}: unreadable run record ({err.msg}); use --restart") from None
            changed = _changed_keys(record.get("config", {}), config)
            if changed:
                raise FemError(
                    f"{cfg.run_dir} was started with a different config ({', '.join(changed)} changed): "
                    "pass --restart to start it over, or choose another --name"
                )
            record["config"] = config
            record["resumed"] = record.get("resumed", 0) + 1
            record.pop("interrupted_stage", None)
        else:
            record = {"name": cfg.name, "status": "running", "created": _now(), "stages": {}, **provenance(cfg)}
        state = cls(path, record)
        state.record["status"] = "running"
        state.save()
        return state

    def save(self) -> None:
        self.record["updated"] = _now()
        write_json(self.path, self.record)

    def is_done(self, key: str) -> bool:
        return self.record["stages"].get(key, {}).get("status") == "done"

    def start(self, key: str) -> None:
        self.record["stages"][key] = {"status": "running", "started": _now()}
        self.save()

    def finish(self, key: str, seconds: float, process: dict[str, Any]) -> None:
        """`process`: the stage's start-up and loading seconds (fem_cli.timings)."""
        self.record["stages"][key].update(status="done", finished=_now(), seconds=round(seconds, 3), **process)
        self.save()

    def reuse(self, key: str, source: str) -> None:
        self.record["stages"][key] = {"status": "done", "started": _now(), "finished": _now(), "seconds": 0.0, "reused_from": source}
        self.save()

    def fail(self, key: str, seconds: float, exit_code: int) -> None:
        self.record["stages"][key].update(status="failed", finished=_now(), seconds=round(seconds, 3), exit_code=exit_code)
        self.record["status"] = "failed"
        self.save()

    def interrupt(self, key: str | None, seconds: float) -> None:
        """Ctrl-C: the stage (if one was running) and the run say `interrupted`; a rerun resumes."""
        if key is not None and self.record["stages"].get(key, {}).get("status") == "running":
            self.record["stages"][key].update(status="interrupted", finished=_now(), seconds=round(seconds, 3))
        self.record["status"] = "interrupted"
        self.record["interrupted_stage"] = key
        self.save()

    def complete(self) -> None:
        self.record["status"] = "done"
        self.save()
