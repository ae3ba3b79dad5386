"""Running `fem` in-process for tests, and the shape every bad-input error must have."""

from __future__ import annotations

from typer.testing import CliRunner

from fem_cli.cli.main import app

runner = CliRunner()


def fem(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def assert_one_line_error(result, message: str) -> None:
    """Exit code 2, no traceback, and the error is the last line, whole."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("error: ") and message in last, result.output
