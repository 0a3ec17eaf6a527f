"""The model strings of exapt's local models: ``local[:PATH][+adapter:NAME]``, and engine names.

- ``parse_local_name(name)``: the checkpoint (None: the embedded Gemma) and the adapter of a
  model string, e.g. ``local:runs/ckpt+adapter:sft-1``;
- an adapter is a registered name (``check_adapter_name``: letters, digits, ``.``, ``_`` and
  ``-``) or a peft folder (``is_adapter_path``: the reference contains a ``/``, or starts with
  ``~`` or ``.``);
- ``engine_choice(engine)``: the local engine asked for (``engine=``, else
  ``EXAPT_LOCAL_ENGINE``, else ``auto``), one of ``ENGINES``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from exapt.errors import ConfigError

ADAPTER_SEPARATOR = "+adapter:"
_ADAPTER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
ENGINES = ("auto", "llama", "transformers")


def is_adapter_path(reference: str) -> bool:
    return "/" in reference or reference.startswith(("~", "."))


def check_adapter_name(name: str) -> str:
    if not _ADAPTER_NAME.fullmatch(name):
        raise ConfigError(
            f"bad LoRA adapter name {name!r}",
            hint="use letters, digits, '.', '_' and '-' (or give a peft folder path with a '/')",
        )
    return name


def parse_local_name(name: str) -> tuple[Path | None, str | None]:
    """``(checkpoint or None, adapter or None)`` of ``local[:PATH][+adapter:NAME]``."""
    base, separator, adapter = name.rpartition(ADAPTER_SEPARATOR)
    if not separator:
        base, adapter = name, ""
    elif not adapter.strip():
        raise ConfigError(f"model {name!r}: no adapter after {ADAPTER_SEPARATOR!r}")
    base, adapter = base.strip(), adapter.strip()
    if base != "local" and not base.startswith("local:"):
        raise ConfigError(f"model {name!r} is not local[:PATH][{ADAPTER_SEPARATOR}NAME]")
    path = base.partition(":")[2].strip()
    if adapter and not is_adapter_path(adapter):
        check_adapter_name(adapter)
    return (Path(path) if path else None), (adapter or None)


def engine_choice(engine: str | None) -> str:
    """The local engine to use: ``engine``, else ``EXAPT_LOCAL_ENGINE``, else ``auto``."""
    choice = (engine or os.environ.get("EXAPT_LOCAL_ENGINE") or "auto").strip().lower()
    if choice not in ENGINES:
        raise ConfigError(
            f"unknown local engine {choice!r}",
            hint=f"use one of {', '.join(ENGINES)} (EXAPT_LOCAL_ENGINE or engine=)",
        )
    return choice
