"""Fine-tuning records from stored trajectories: ``export_jsonl`` writes one JSON object per
attempt — an OpenAI chat record ``{"messages", "tools"}`` (assistant ``tool_calls`` and
``tool`` messages rebuilt from the steps) or ``{"prompt", "completion"}``.

Only what the agent itself saw and did goes out: model calls and tool steps. The score step
(the judge's feedback) is never exported, and attempts whose pass is not trusted
(``Outcome.trusted`` false) are not exported as passes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from exapt.memory.trajectories import TrajectoryStore
from exapt.paths import atomic_write
from exapt.records import Step, Trajectory


def export_jsonl(
    store: TrajectoryStore, path: Path | str, run_id: str | None = None, *, passed_only: bool = True
) -> int:
    """Write fine-tuning records, one JSON object per line, atomically; return how many.

    A trajectory with chat model calls becomes one OpenAI chat record; one with only
    completion calls becomes ``{"prompt", "completion"}`` from its last completion.
    Trajectories without model calls are skipped. ``passed_only`` keeps only attempts the
    judge passed and trusts.
    """
    lines = []
    for t in store.trajectories(run_id):
        if passed_only and not _learnable_pass(t):
            continue
        record = to_finetune_record(t.steps)
        if record is not None:
            lines.append(json.dumps(record, ensure_ascii=False))
    atomic_write(Path(path), "".join(line + "\n" for line in lines))
    return len(lines)


def _learnable_pass(t: Trajectory) -> bool:
    """Passed, and trusted (records stored before ``trusted`` existed count by ``passed``)."""
    return t.result.passed and t.result.trusted is not False


def to_finetune_record(steps: list[Step]) -> dict[str, Any] | None:
    """One fine-tuning record from a trajectory's steps (see ``export_jsonl``), or None."""
    chat = [s for s in steps if s.kind == "model" and _is_chat(s.input)]
    if chat:
        messages: list[dict[str, Any]] = []
        tools: list[dict[str, Any]] = []
        for step in steps:
            if step.kind == "model" and _is_chat(step.input):
                messages = _merge_sent(messages, step.input["messages"])
                tools = step.input.get("tools") or tools
                messages.append(_assistant_message(step.output))
            elif step.kind == "tool" and isinstance(step.input, dict):
                call_id = step.input.get("id")
                if call_id and not _has_tool_result(messages, call_id):
                    messages.append(
                        {"role": "tool", "tool_call_id": call_id, "content": _text(step.output)}
                    )
        while messages and messages[-1].get("role") != "assistant":
            messages.pop()  # e.g. the observation of `submit`: nothing after it to learn
        record: dict[str, Any] = {"messages": messages}
        if tools:
            record["tools"] = [tool_schema(tool) for tool in tools]
        return record
    completions = [
        s for s in steps if s.kind == "model" and isinstance(s.input, dict) and "prompt" in s.input
    ]
    if completions:
        last = completions[-1]
        return {"prompt": str(last.input["prompt"]), "completion": _text(last.output)}
    return None


def _is_chat(step_input: Any) -> bool:
    return isinstance(step_input, dict) and isinstance(step_input.get("messages"), list)


def _merge_sent(history: list[dict[str, Any]], sent: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The conversation after a model call that was sent ``sent``.

    Agents send either the whole history each call (the usual ReAct loop) or only what is
    new since their last call; a ``sent`` that starts with the history's roles (and tool-call
    ids) is the whole history and replaces it, otherwise it is appended — minus tool results
    the history already holds from tool steps.
    """
    sent = [dict(m) for m in sent]
    if _same_shape(sent[: len(history)], history):
        return sent
    merged = list(history)
    for message in sent:
        call_id = message.get("tool_call_id")
        if message.get("role") == "tool" and call_id and _has_tool_result(merged, call_id):
            continue
        merged.append(message)
    return merged


def _same_shape(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> bool:
    if len(a) != len(b):
        return False
    return all(
        x.get("role") == y.get("role") and x.get("tool_call_id") == y.get("tool_call_id")
        for x, y in zip(a, b, strict=True)
    )


def _has_tool_result(messages: list[dict[str, Any]], call_id: str) -> bool:
    return any(m.get("role") == "tool" and m.get("tool_call_id") == call_id for m in messages)


def _assistant_message(output: Any) -> dict[str, Any]:
    """A model step's output as an OpenAI assistant message, tool-call arguments as JSON text
    (the fine-tuning format requires strings)."""
    if not isinstance(output, dict):
        return {"role": "assistant", "content": _text(output)}
    message: dict[str, Any] = {"role": "assistant", "content": output.get("content") or ""}
    if "text" in output and "content" not in output:  # a dumped ModelReply
        message["content"] = output.get("text") or ""
    calls = []
    for call in output.get("tool_calls") or []:
        fn = call.get("function") or {"name": call.get("name"), "arguments": call.get("arguments")}
        arguments = fn.get("arguments")
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments if arguments is not None else {})
        calls.append(
            {
                "id": call.get("id", ""),
                "type": "function",
                "function": {"name": fn.get("name", ""), "arguments": arguments},
            }
        )
    if calls:
        message["tool_calls"] = calls
    return message


def tool_schema(tool: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI ``{"type": "function", "function": {...}}`` tool, whichever way it was stored."""
    if tool.get("type") == "function" and "function" in tool:
        return tool
    return {"type": "function", "function": tool}


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        for key in ("content", "text", "output", "stdout"):
            if isinstance(value.get(key), str):
                return str(value[key])
    return json.dumps(value, default=str)
