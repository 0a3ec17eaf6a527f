"""Training examples from stored trajectories: one ``CallExample`` per model call, with the
exact context that call was sent and what the model answered.

Why not ``trajectory_export``: it writes one record per attempt (the last call's history,
old observations already cut in it, tool arguments as JSON strings, only the last
completion). Here every model call is its own example:

- a chat call: ``prompt`` = the messages it was sent (as the local engines clean them: text
  content, no ``None`` values), ``completion`` = ``[the assistant message]``, ``tools`` = the
  schemas it was offered; tool-call arguments are JSON objects everywhere (chat templates
  render them with ``tojson``);
- a completion call: ``prompt`` and ``completion`` are the text sent and the text returned.

Each example carries a ``label``: True when the call's output is known to lead to a trusted
pass, False when it is known bad, None when nothing is known (left out of training sets):

- chat agents: every call of a trusted pass is True; every call of a failed attempt False
  (the attempt's outcome is the only signal; a pass the judge did not trust labels nothing);
- the ``completion`` graph (``agents/graphs/completion.py``) draws a round of drafts, checks
  them in order against the task's visible examples (one ``note`` step per check, until one
  passes) and writes the first that passed, else the last checked. So: the written draft gets
  the attempt's outcome; a draft that failed its visible checks is False; a draft never
  checked is None (also the last round's, when a budget ended the attempt before its check;
  a round without notes otherwise means the task has no visible checks: its first draft
  stands).

The score step (the judge's feedback) is never part of an example.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from typing import Any

from exapt.agents.models.base import ARGUMENTS_ERROR_KEY, RAW_ARGUMENTS_KEY
from exapt.memory.trajectory_export import tool_schema
from exapt.records import Step, Trajectory
from exapt.tasks.splits import split_of


@dataclass(frozen=True)
class CallExample:
    """One model call as a training example (see the module docstring)."""

    prompt: str | list[dict[str, Any]]
    completion: str | list[dict[str, Any]]
    tools: list[dict[str, Any]] | None
    label: bool | None
    task_id: str
    split: str
    reward: float
    passed: bool  # the attempt's trusted pass
    variant_id: str
    model: str
    trajectory_id: str  # run_id/task_id/trial
    step: int  # index of the model step in its trajectory
    trial: int = 0
    source: str = "attempt"  # attempt | repair (Re-ReST)
    written: bool = True  # completion graph: the draft the attempt kept (chat calls: True)
    round: int = 0  # completion graph: the sample/check round; chat: the call's number
    tokens: int = 0  # tokens out reported by the model (0 when unknown)
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def conversational(self) -> bool:
        return isinstance(self.prompt, list)

    def prompt_key(self) -> str:
        """A hash of what the call was sent (prompt and tools): equal keys, equal prompts."""
        return _digest({"prompt": self.prompt, "tools": self.tools})

    def key(self) -> str:
        """A hash of prompt, tools and completion: what deduplication compares."""
        return _digest({"prompt": self.prompt, "tools": self.tools, "completion": self.completion})

    def with_prompt(self, prompt: str | list[dict[str, Any]], **changes: Any) -> CallExample:
        return replace(self, prompt=prompt, **changes)


def trajectory_id(t: Trajectory) -> str:
    return f"{t.run_id}/{t.task_id}/{t.trial}"


def trusted(t: Trajectory) -> bool:
    """A pass that may be learned from: passed and trusted by the judge (records made
    before ``trusted`` existed count by ``passed`` only when the scorer reported no error)."""
    r = t.result
    if not r.passed:
        return False
    return r.trusted if r.trusted is not None else r.error is None


def call_examples(t: Trajectory) -> list[CallExample]:
    """Every model call of ``t`` as a ``CallExample``, in order (see the module docstring)."""
    good = trusted(t)
    outcome: bool | None = good if (good or not t.result.passed) else None  # untrusted: None
    base = {
        "task_id": t.task_id,
        "split": split_of(t.task_id),
        "reward": float(t.result.reward),
        "passed": good,
        "variant_id": t.variant_id,
        "model": t.model,
        "trajectory_id": trajectory_id(t),
        "trial": t.trial,
    }
    labels: dict[int, tuple[bool | None, int]] = {}
    chosen: int | None = None
    if _is_completion_graph(t):
        labels, chosen = _completion_labels(t.steps, outcome, t.result.stop_reason)
    out: list[CallExample] = []
    calls = 0
    for index, step in enumerate(t.steps):
        if step.kind != "model" or not isinstance(step.input, dict):
            continue
        example = _example(step, index, outcome, base)
        if example is None:
            continue
        if index in labels:
            label, round_ = labels[index]
            example = replace(example, label=label, round=round_, written=index == chosen)
        else:
            example = replace(example, round=calls)
        calls += 1
        out.append(example)
    return out


def _example(
    step: Step, index: int, outcome: bool | None, base: dict[str, Any]
) -> CallExample | None:
    sent = step.input
    if isinstance(sent.get("messages"), list):
        completion = assistant_message(step.output)
        label = outcome
        if label and _has_argument_error(completion):
            label = None  # a malformed tool call is never a positive, whatever followed it
        return CallExample(
            prompt=clean_messages(sent["messages"]),
            completion=[completion],
            tools=[tool_schema(t) for t in sent["tools"]] if sent.get("tools") else None,
            label=label,
            step=index,
            tokens=step.tokens_out,
            **base,
        )
    if isinstance(sent.get("prompt"), str):
        return CallExample(
            prompt=sent["prompt"],
            completion=_text(step.output),
            tools=None,
            label=outcome,
            step=index,
            tokens=step.tokens_out,
            **base,
        )
    return None


def _is_completion_graph(t: Trajectory) -> bool:
    return t.metadata.get("graph") == "completion"


def _completion_labels(
    steps: list[Step], outcome: bool | None, stop_reason: str = "done"
) -> tuple[dict[int, tuple[bool | None, int]], int | None]:
    """Model-step index -> (label, round) for the ``completion`` graph (module docstring),
    and the index of the draft the graph wrote (None if it wrote none).

    Rounds are runs of consecutive model steps; the visible-check notes after a round belong
    to its drafts in order. The draft the graph wrote gets ``outcome``.
    """
    rounds: list[list[int]] = []
    checks: list[list[bool]] = []
    previous = ""
    for index, step in enumerate(steps):
        if step.kind == "model" and isinstance(step.input, dict) and "prompt" in step.input:
            if previous != "model":
                rounds.append([])
                checks.append([])
            rounds[-1].append(index)
            previous = "model"
        elif step.kind == "note" and isinstance(step.input, dict) and rounds:
            if step.input.get("check") == "visible":
                checks[-1].append(bool(step.input.get("passed")))
            previous = "note"
    labels: dict[int, tuple[bool | None, int]] = {}
    written: int | None = None
    last_checked: int | None = None
    for r, (drafts, verdicts) in enumerate(zip(rounds, checks, strict=True)):
        cut_short = r == len(rounds) - 1 and stop_reason not in ("done", "")
        if not verdicts and drafts and not cut_short:  # no visible checks: the first stands
            verdicts = [True]
        for i, draft in enumerate(drafts):
            if i < len(verdicts):
                labels[draft] = (None if verdicts[i] else False, r)
                last_checked = draft
                if verdicts[i] and written is None:
                    written = draft
            else:
                labels[draft] = (None, r)
        if written is not None:
            break
    chosen = written if written is not None else last_checked
    if chosen is not None:
        labels[chosen] = (outcome, labels[chosen][1])
    return labels, chosen


# --- messages as the local engines render them -------------------------------------------


def clean_messages(messages: list[Any]) -> list[dict[str, Any]]:
    """Messages as a chat template sees them: content as text, ``None`` values dropped,
    tool-call arguments as objects (what ``ChatPrompt.render`` does before rendering)."""
    clean = []
    for message in messages:
        if not isinstance(message, dict):
            continue
        if message.get("role") == "assistant":
            clean.append(assistant_message(message))
            continue
        out = {k: v for k, v in message.items() if v is not None}
        out["content"] = _content_text(message.get("content"))
        clean.append(out)
    return clean


def assistant_message(output: Any) -> dict[str, Any]:
    """A model's reply as an assistant message whose tool-call arguments are objects."""
    if not isinstance(output, dict):
        return {"role": "assistant", "content": _text(output)}
    content = output.get("content")
    if content is None and "text" in output:  # a dumped ModelReply
        content = output.get("text")
    message: dict[str, Any] = {"role": "assistant", "content": _content_text(content)}
    calls = []
    for call in output.get("tool_calls") or []:
        if not isinstance(call, dict):
            continue
        fn = call.get("function") or {"name": call.get("name"), "arguments": call.get("arguments")}
        calls.append(
            {
                "id": str(call.get("id") or ""),
                "type": "function",
                "function": {"name": str(fn.get("name") or ""), "arguments": _arguments(fn)},
            }
        )
    if calls:
        message["tool_calls"] = calls
    return message


def _arguments(fn: dict[str, Any]) -> dict[str, Any]:
    arguments = fn.get("arguments")
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except ValueError:
            return {ARGUMENTS_ERROR_KEY: "not JSON", RAW_ARGUMENTS_KEY: arguments}
    if arguments is None:
        return {}
    if not isinstance(arguments, dict):
        return {ARGUMENTS_ERROR_KEY: "not an object", RAW_ARGUMENTS_KEY: json.dumps(arguments)}
    return arguments


def _has_argument_error(message: dict[str, Any]) -> bool:
    return any(
        ARGUMENTS_ERROR_KEY in (call["function"]["arguments"] or {})
        for call in message.get("tool_calls") or []
    )


def _content_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return str(content)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        for key in ("content", "text"):
            if isinstance(value.get(key), str):
                return str(value[key])
    return json.dumps(value, default=str)


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]
