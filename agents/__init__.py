"""Agents (``exapt.agents``): specs (the genome), LangGraph graphs, models, the runner.

Names load on first use (PEP 562), so reading a spec does not import LangGraph.

Example:
    from exapt.agents import load_spec, run_task
    attempt = run_task(task, spec=load_spec("tool_coder"), model=model, sandbox=factory,
                       scorer=suite.scorer(), run_id="r1")
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from exapt.agents.budget import Budget
    from exapt.agents.runner import Attempt, run_task
    from exapt.agents.spec import AgentSpec, MemoryOptions, default_spec_for, load_spec
    from exapt.agents.writer import text_writer

__all__ = [
    "AgentSpec",
    "Attempt",
    "Budget",
    "MemoryOptions",
    "default_spec_for",
    "load_spec",
    "run_task",
    "text_writer",
]

_LAZY = {
    "AgentSpec": "exapt.agents.spec",
    "Attempt": "exapt.agents.runner",
    "Budget": "exapt.agents.budget",
    "MemoryOptions": "exapt.agents.spec",
    "default_spec_for": "exapt.agents.spec",
    "load_spec": "exapt.agents.spec",
    "run_task": "exapt.agents.runner",
    "text_writer": "exapt.agents.writer",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
