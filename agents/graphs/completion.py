"""``completion``: for base models on function-completion tasks (e.g. HumanEval).

start -> sample -> check -> (sample again with the error | finish) -> END.
``sample`` renders the ``completion`` prompt (the file's content, after the previous failed
attempt and its error as Python comments), completes it with stop sequences, and assembles
the function; ``check`` runs the task's visible checks (``metadata["visible_tests"]``) on it
in the agent's own sandbox; ``finish`` writes the best solution (the first that passed,
else the last) to the file. Graph options: ``retries`` (extra samples after a failure,
default 2), ``max_new_tokens`` (default 256), ``temperature``, ``stop``, ``file``,
``check_timeout_s``.
"""

from __future__ import annotations

import json
import operator
from typing import Annotated, Any, NotRequired, TypedDict

from exapt.agents.context import AgentContext
from exapt.agents.graphs.loop import counters
from exapt.agents.spec import AgentSpec
from exapt.tools.base import cut
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

STOP = ["\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#", "\nassert "]

# Runs inside the sandbox: import the file, bind the entry point, run each visible test.
HARNESS = """
import json, sys, traceback
path, entry, tests = json.loads(sys.stdin.readline())
ns = {"__name__": "solution"}
exec(compile(open(path).read(), path, "exec"), ns)
if entry:
    ns["candidate"] = ns[entry]
for test in tests:
    try:
        exec(test, ns)
    except AssertionError:
        print(f"FAILED: {test.strip()}")
        sys.exit(1)
    except Exception as exc:
        print(f"ERROR in {test.strip()}: {type(exc).__name__}: {exc}")
        sys.exit(1)
print("all visible checks passed")
"""


class Candidate(TypedDict):
    code: str
    passed: bool
    feedback: str


class CompletionState(TypedDict):
    candidates: Annotated[list[Candidate], operator.add]
    steps: Annotated[int, operator.add]
    tokens: Annotated[int, operator.add]
    cost_usd: Annotated[float, operator.add]
    draft: NotRequired[str]  # the assembled code of the last sample, not yet checked
    done: NotRequired[bool]  # a candidate passed, or no retries are left
    stop_reason: NotRequired[str]


def target_file(ctx: AgentContext) -> str:
    """The file to complete: option ``file``, the task's ``metadata.file``, its only file, or
    ``solution.py``."""
    named = ctx.option("file", None) or ctx.task.metadata.get("file")
    if named:
        return str(named)
    return next(iter(ctx.task.files)) if len(ctx.task.files) == 1 else "solution.py"


def visible_tests(ctx: AgentContext) -> list[str]:
    tests = ctx.task.metadata.get("visible_tests") or []
    return [tests] if isinstance(tests, str) else [str(test) for test in tests]


def sample(state: CompletionState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
    ctx = runtime.context
    if reason := ctx.stop_reason(state):
        return {"stop_reason": reason}
    source = ctx.task.files.get(target_file(ctx), "")
    failed = state["candidates"][-1] if state["candidates"] else None
    prompt = ctx.render("completion", prompt=source, failed=failed)
    reply = ctx.complete(prompt, stop=list(ctx.option("stop", STOP)))
    return {**counters(reply), "draft": source + reply.text.rstrip() + "\n"}


def check(state: CompletionState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
    ctx = runtime.context
    code, path, tests = state.get("draft", ""), target_file(ctx), visible_tests(ctx)
    ctx.sandbox.write(path, code)
    last_try = len(state["candidates"]) >= int(ctx.option("retries", 2))
    if not tests:  # nothing to check against: the sample stands as it is
        candidate = Candidate(code=code, passed=True, feedback="no visible checks")
        return {"candidates": [candidate], "done": True}
    payload = json.dumps([path, ctx.task.metadata.get("entry_point", ""), tests]) + "\n"
    timeout = float(ctx.option("check_timeout_s", 10.0))
    result = ctx.sandbox.exec(["python3", "-c", HARNESS], stdin=payload, timeout=timeout)
    if result.timed_out:
        feedback = f"timed out after {timeout:.0f} s (an infinite loop?)"
    else:
        feedback = cut((result.stdout + result.stderr).strip(), 2000)
    ctx.recorder.note(feedback, check="visible", passed=result.ok)
    candidate = Candidate(code=code, passed=result.ok, feedback=feedback)
    return {"candidates": [candidate], "done": result.ok or last_try}


def finish(state: CompletionState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
    ctx = runtime.context
    candidates = state["candidates"]
    best = next((c for c in candidates if c["passed"]), candidates[-1] if candidates else None)
    if best is not None:
        ctx.sandbox.write(target_file(ctx), best["code"])
    return {"stop_reason": state.get("stop_reason") or "done"}


def after_sample(state: CompletionState) -> str:
    return "finish" if state.get("stop_reason") else "check"


def after_check(state: CompletionState) -> str:
    return "finish" if state.get("done") else "sample"


def build(
    spec: AgentSpec,
) -> StateGraph[CompletionState, AgentContext, CompletionState, CompletionState]:
    graph = StateGraph(CompletionState, context_schema=AgentContext)
    graph.add_node("sample", sample)
    graph.add_node("check", check)
    graph.add_node("finish", finish)
    graph.add_edge(START, "sample")
    graph.add_conditional_edges("sample", after_sample, ["check", "finish"])
    graph.add_conditional_edges("check", after_check, ["sample", "finish"])
    graph.add_edge("finish", END)
    return graph
