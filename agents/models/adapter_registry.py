"""The LoRA adapters of the local engine on disk, and the base config a peft folder converts with.

``LocalEngine.add_adapter(name, peft_dir)`` records ``{"name", "peft_dir", "base"}`` in
``<exapt home>/models/adapters/NAME.json`` (``write_record``), so ``<base>+adapter:NAME``
works in later processes; a record names the base model string it was registered for.
``base_config(base, peft)``: the folder with the base model's ``config.json`` that llama.cpp's
LoRA converter needs beside the adapter.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exapt import paths
from exapt.errors import ConfigError


@dataclass(frozen=True)
class Adapter:
    name: str
    peft_dir: Path
    gguf: Path


def registry_dir() -> Path:
    return paths.models_dir() / "adapters"


def write_record(name: str, peft_dir: Path, base_name: str) -> None:
    """Record adapter ``name`` (the peft folder ``peft_dir``, for the base ``base_name``)."""
    record = {"name": name, "peft_dir": str(peft_dir), "base": base_name}
    paths.atomic_write(registry_dir() / f"{name}.json", json.dumps(record, indent=2))


def read_record(name: str) -> tuple[Any, Any] | None:
    """``(peft folder, base model string)`` recorded for ``name``, None without a record;
    ``ConfigError`` for a record that cannot be read."""
    record_path = registry_dir() / f"{name}.json"
    if not record_path.is_file():
        return None
    try:
        record = json.loads(record_path.read_text())
        peft_dir, base = record["peft_dir"], record["base"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{record_path}: not a valid adapter record: {exc}") from exc
    return peft_dir, base


def delete_record(name: str) -> bool:
    """Delete the record of ``name``; False if there was none."""
    record = registry_dir() / f"{name}.json"
    if not record.is_file():
        return False
    record.unlink()
    return True


def recorded_names() -> set[str]:
    """The names recorded on disk."""
    return {p.stem for p in registry_dir().glob("*.json")}


def base_config(base: Path | None, peft: Path) -> Path:
    """A folder with the base model's config.json, for the LoRA converter: ``base`` (None:
    the embedded Gemma) if it is a checkpoint folder, else the adapter's
    ``base_model_name_or_path`` if that is one, else Gemma's config for ``local``."""
    if base is not None and (base / "config.json").is_file():
        return base
    try:
        config = json.loads((peft / "adapter_config.json").read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{peft} is not a peft adapter folder: {exc}") from exc
    trained_on = config.get("base_model_name_or_path")
    if trained_on and (Path(trained_on).expanduser() / "config.json").is_file():
        return Path(trained_on).expanduser()
    if base is None:
        from exapt.agents.models.gemma import gemma_config_dir

        return gemma_config_dir()
    raise ConfigError(
        f"cannot convert the adapter {peft} for {base}: its base_model_name_or_path "
        f"({trained_on!r}) is not a local checkpoint folder with a config.json",
        hint="set base_model_name_or_path in adapter_config.json to the base checkpoint",
    )
