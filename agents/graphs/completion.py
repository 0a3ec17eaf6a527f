"""``completion``: for base models on function-completion tasks (e.g. HumanEval).

start -> sample -> check -> (sample again with the error | finish) -> END.
``sample`` renders the ``completion`` prompt (the file's content, after the previous failed
attempt and its error as Python comments), draws ``samples`` completions of it with stop
sequences (at once, so a local server batches them), and assembles the functions; ``check``
runs the task's visible checks (``metadata["visible_tests"]``) on each in the agent's own
sandbox until one passes; ``finish`` writes the best solution (the first that passed, else
the last) to the file. Each completion is one step of the budget.

Graph options: ``retries`` (rounds after a failed one, default 2), ``samples`` (completions
per round, default 1; use a temperature > 0 with more than one), ``max_new_tokens``
(default 256), ``temperature``, ``stop``, ``file``, ``check_timeout_s`` (default 10).
"""

from __future__ import annotations

import json
import operator
from typing import Annotated, Any, NotRequired, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from exapt.agents.context import AgentContext
from exapt.agents.graphs.loop import counters, out_of_context
from exapt.agents.models.base import ContextWindowExceeded
from exapt.agents.spec import AgentSpec
from exapt.tools.base import cut

STOP = ["\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#", "\nassert "]

# Runs inside the sandbox: run the file, bind the entry point, run each visible test; on a
# failed `assert X == Y` it shows what X was, the most useful hint for the next sample.
HARNESS = """
import json, sys
path, entry, tests = json.loads(sys.stdin.readline())
ns = {"__name__": "solution"}
try:
    exec(compile(open(path).read(), path, "exec"), ns)
    if entry:
        ns["candidate"] = ns[entry]
except BaseException as exc:
    print(f"{path} does not run: {type(exc).__name__}: {exc}")
    sys.exit(1)
for test in tests:
    test = test.strip()
    try:
        exec(test, ns)
    except AssertionError:
        got = ""
        if test.startswith("assert ") and " == " in test:
            try:
                got = f" (got {eval(test[7:].split(' == ')[0], ns)!r})"
            except BaseException:
                pass
        print(f"FAILED: {test}{got}")
        sys.exit(1)
    except BaseException as exc:
        print(f"ERROR in {test}: {type(exc).__name__}: {exc}")
        sys.exit(1)
print("all visible checks passed")
"""


class Candidate(TypedDict):
    code: str  # the whole file
    completion: str  # the model's part of it
    passed: bool
    feedback: str


class CompletionState(TypedDict):
    candidates: Annotated[list[Candidate], operator.add]
    steps: Annotated[int, operator.add]
    tokens: Annotated[int, operator.add]
    cost_usd: Annotated[float, operator.add]
    rounds: Annotated[int, operator.add]  # sample -> check rounds done
    drafts: NotRequired[list[str]]  # this round's completions, not yet checked
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
    wanted = int(ctx.option("samples", 1))
    try:
        replies = ctx.complete_many(
            prompt,
            min(wanted, ctx.budget.steps - state["steps"]),
            stop=list(ctx.option("stop", STOP)),
        )
    except ContextWindowExceeded as exc:
        return out_of_context(ctx, exc)
    update: dict[str, Any] = {"steps": 0, "tokens": 0, "cost_usd": 0.0}
    for reply in replies:
        for key, value in counters(reply).items():
            update[key] += value
    return {**update, "drafts": [reply.text.rstrip() + "\n" for reply in replies]}


def run_checks(ctx: AgentContext, completion: str) -> Candidate:
    """Write the file completed by ``completion`` and run the visible checks on it in the
    agent's sandbox."""
    path, tests = target_file(ctx), visible_tests(ctx)
    code = ctx.task.files.get(path, "") + completion
    ctx.sandbox.write(path, code)
    if not tests:  # nothing to check against: the sample stands as it is
        return Candidate(
            code=code, completion=completion, passed=True, feedback="no visible checks"
        )
    payload = json.dumps([path, ctx.task.metadata.get("entry_point", ""), tests]) + "\n"
    timeout = float(ctx.option("check_timeout_s", 10.0))
    result = ctx.sandbox.exec(["python3", "-c", HARNESS], stdin=payload, timeout=timeout)
    if result.timed_out:
        feedback = f"timed out after {timeout:.0f} s (an infinite loop?)"
    else:
        feedback = cut((result.stdout + result.stderr).strip(), 2000)
    ctx.recorder.note(feedback, check="visible", passed=result.ok)
    return Candidate(code=code, completion=completion, passed=result.ok, feedback=feedback)


def check(state: CompletionState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
    ctx = runtime.context
    checked: list[Candidate] = []
    for completion in state.get("drafts", []):
        checked.append(run_checks(ctx, completion))
        if checked[-1]["passed"]:
            break
    last_round = state["rounds"] + 1 > int(ctx.option("retries", 2))
    passed = any(c["passed"] for c in checked)
    return {"candidates": checked, "rounds": 1, "drafts": [], "done": passed or last_round}


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
