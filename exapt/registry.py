"""Choose a backend by short name or by dotted path (``module:Class`` or ``module.Class``)."""

from __future__ import annotations

import importlib
from typing import Any

from exapt.errors import ConfigError


def resolve(kind: str, name: str, known: dict[str, str]) -> Any:
    """Return the object named ``name``: a key of ``known`` (mapping short names to dotted
    paths) or a dotted path itself. An unknown name raises ``ConfigError`` listing the valid ones.

    Example:
        resolve("sandbox backend", "bwrap", {"bwrap": "exapt.sandbox.bwrap:BwrapSandbox"})
    """
    target = known.get(name, name)
    if ":" in target:
        module_name, _, attr = target.partition(":")
    elif "." in target:
        module_name, _, attr = target.rpartition(".")
    else:
        raise ConfigError(
            f"unknown {kind} {name!r}",
            hint=f"use one of: {', '.join(sorted(known))} (or a dotted path module:Class)",
        )
    try:
        module = importlib.import_module(module_name)
        return getattr(module, attr)
    except (ImportError, AttributeError) as exc:
        if name in known:
            raise  # our own backend failed to import: a bug, not bad input
        raise ConfigError(
            f"unknown {kind} {name!r}: {exc}",
            hint=f"use one of: {', '.join(sorted(known))} (or a dotted path module:Class)",
        ) from exc
