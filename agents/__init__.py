"""Agents (``exapt.agents``): specs (the genome), LangGraph graphs, models, the runner.

Example:
    from exapt.agents import load_spec, run_task
    attempt = run_task(task, spec=load_spec("tool_coder"), model=model, sandbox=factory,
                       scorer=suite.scorer(), run_id="r1")
"""

from exapt.agents.budget import Budget
from exapt.agents.runner import Attempt, run_task
from exapt.agents.spec import AgentSpec, MemoryOptions, default_spec_for, load_spec

__all__ = [
    "AgentSpec",
    "Attempt",
    "Budget",
    "MemoryOptions",
    "default_spec_for",
    "load_spec",
    "run_task",
]
