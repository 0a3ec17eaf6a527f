"""Inside the sandbox: run one attempt of a variant that carries its own code.

Started by ``boot.py`` (see ``host.py`` for the host's side). Reads one JSON job from
stdin — the public task (never its hidden part), the spec (with its code), the variant's
folder (read-only), the model's name and flags, the budget, what memory recalled — then
imports the variant's graph builder *here*, builds and runs the graph on an
``AgentContext`` whose model is the host's proxy and whose tools act in this sandbox.

Mode ``build`` stops after compiling the graph (the check a child must pass before it is
evaluated). The exit status and the final report are claims the host treats as such: the
trajectory is the host's (model calls recorded as it served them, tool calls checked
against them) and the score is the host's judge's.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from exapt.agents.budget import Budget
from exapt.agents.context import AgentContext
from exapt.agents.remote.client import SOCKET_ENV, ProxyModel, ReportingRecorder
from exapt.agents.remote.inside import InsideSandbox
from exapt.agents.spec import AgentSpec
from exapt.errors import ConfigError
from exapt.memory.base import Recollection
from exapt.records import Task, Trajectory
from exapt.sandbox.base import Limits, Sandbox, SandboxError
from exapt.tools.base import get_tools


def load_builder(spec: AgentSpec, folder: str) -> Any:
    """The graph builder the spec names in its folder (imported in this process)."""
    rel, func = spec.graph_file()
    path = Path(folder) / rel
    sys.path.insert(0, folder)  # the variant's own helper modules beside its agent.py
    module_name = rel.removesuffix(".py").replace("/", ".")
    module_spec = importlib.util.spec_from_file_location(module_name, path)
    if module_spec is None or module_spec.loader is None:
        raise ConfigError(f"cannot load {rel} of variant {spec.name!r}")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_name] = module
    module_spec.loader.exec_module(module)
    builder = getattr(module, func, None)
    if not callable(builder):
        raise ConfigError(f"{rel} of variant {spec.name!r} has no function {func!r}")
    return builder


def build(spec: AgentSpec, folder: str) -> Any:
    """Build and compile the variant's graph; ``ConfigError`` if it is not a StateGraph."""
    from langgraph.graph import StateGraph

    graph = load_builder(spec, folder)(spec)
    if not isinstance(graph, StateGraph):
        raise ConfigError(
            f"graph builder {spec.graph!r} returned {type(graph).__name__}, not a StateGraph"
        )
    return graph.compile()


def _no_sandboxes(files: dict[str, str | bytes]) -> Sandbox:
    raise SandboxError("a variant cannot open sandboxes of its own")


def run(job: dict[str, Any]) -> str:
    """Run the job's attempt; the stop reason the graph ended with."""
    spec = AgentSpec.model_validate(job["spec"])
    compiled = build(spec, job["folder"])
    model = ProxyModel(
        os.environ[SOCKET_ENV],
        name=job["model"]["name"],
        supports_tools=bool(job["model"]["supports_tools"]),
        is_base=bool(job["model"]["is_base"]),
    )
    if job.get("mode") == "build":
        model.event("built")
        return "built"
    task = Task.model_validate({**job["task"], "hidden": {}})
    recalled = job.get("recollection")
    trajectory = Trajectory(run_id="", task_id=task.id, variant_id=spec.variant_id())
    ctx = AgentContext(
        task=task,
        spec=spec,
        model=model,
        sandbox=InsideSandbox(Limits.model_validate(job["limits"])),
        sandbox_factory=_no_sandboxes,
        tools=get_tools(spec.tools),
        recorder=ReportingRecorder(trajectory, model),
        budget=Budget.model_validate(job["budget"]),
        recollection=Recollection.model_validate(recalled) if recalled else None,
        # the host's clock: the wall budget counts from when the host started the attempt
        started=time.monotonic() - float(job.get("elapsed_s", 0.0)),
    )
    from exapt.agents.runner import invoke

    final = invoke(compiled, ctx)
    reason = str(final.get("stop_reason") or "done")
    model.event("end", stop_reason=reason)
    return reason


def main() -> None:
    job = json.loads(sys.stdin.readline())
    try:
        reason = run(job)
    except BaseException as exc:  # the variant's crash: the host reads the status and stderr
        traceback.print_exception(exc, file=sys.stderr)
        sys.stderr.flush()
        os._exit(1)
    sys.stdout.write(json.dumps({"stop_reason": reason}) + "\n")
    sys.stdout.flush()
    os._exit(0)  # no interpreter teardown: threads a variant left must not hold the exit
