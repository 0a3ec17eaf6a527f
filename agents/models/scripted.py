"""``ScriptedModel``: a test double that answers from a script, shipped for tests and users.

Two modes:

- **sequence** (a list): the n-th call gets the n-th reply; one call too many raises
  ``ScriptExhausted`` (a ``ModelError``) naming how many replies there were.
- **match** (a dict ``{substring: reply}``): each call gets the reply of the first key that
  occurs in the last message (or the prompt); replies are reused; no match raises
  ``ScriptExhausted`` listing the keys.

Every call is recorded in ``.calls`` (a deep copy of what was sent), so a test can assert on
the prompts an agent built. Token counts are whitespace word counts: deterministic, so budget
logic can be tested, but not a real tokenizer's numbers.
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Mapping, Sequence
from typing import Any, TypeAlias

from exapt.agents.models.base import Message, ModelError, ModelReply

Reply: TypeAlias = str | ModelReply


class ScriptExhausted(ModelError):
    """The script has no reply for this call (too many calls, or no key matched)."""


class ScriptedModel:
    """A ``Model`` that returns scripted replies in order (or by substring match).

    Example:
        model = ScriptedModel(["Hello!", ModelReply(tool_calls=[ToolCall(id="1", name="submit")])])
        model.chat([{"role": "user", "content": "hi"}]).text  # "Hello!"
        model.calls[0]["messages"][-1]["content"]  # "hi"
    """

    def __init__(
        self,
        replies: Sequence[Reply] | Mapping[str, Reply],
        *,
        supports_tools: bool = True,
        is_base: bool = False,
        name: str = "scripted",
    ) -> None:
        self.name = name
        self.supports_tools = supports_tools
        self.is_base = is_base
        self.calls: list[dict[str, Any]] = []
        self._match: dict[str, Reply] | None = None
        self._replies: list[Reply] = []
        if isinstance(replies, Mapping):
            self._match = dict(replies)
        elif isinstance(replies, str):
            raise TypeError("replies must be a list of replies (or a dict), not one string")
        else:
            self._replies = list(replies)
        self._next = 0
        self._lock = threading.Lock()  # agents may call one model from several threads

    @property
    def remaining(self) -> int:
        """How many sequence replies are left (0 in match mode)."""
        return len(self._replies) - self._next

    def chat(
        self, messages: list[Message], *, tools: list[dict[str, Any]] | None = None, **params: Any
    ) -> ModelReply:
        last = _content_text(messages[-1].get("content")) if messages else ""
        record = {
            "kind": "chat",
            "messages": copy.deepcopy(messages),
            "tools": copy.deepcopy(tools),
            "params": dict(params),
        }
        tokens_in = sum(_words(_content_text(m.get("content"))) for m in messages)
        return self._answer(record, last, tokens_in)

    def complete(self, prompt: str, *, stop: list[str] | None = None, **params: Any) -> ModelReply:
        record = {"kind": "complete", "prompt": prompt, "stop": stop, "params": dict(params)}
        reply = self._answer(record, prompt, _words(prompt))
        if stop:  # like a real server: the text ends before the first stop sequence
            cut = min((i for s in stop if s and (i := reply.text.find(s)) >= 0), default=-1)
            if cut >= 0:
                reply = reply.model_copy(update={"text": reply.text[:cut], "finish_reason": "stop"})
        return reply

    def _answer(self, record: dict[str, Any], last: str, tokens_in: int) -> ModelReply:
        with self._lock:
            self.calls.append(record)
            scripted = self._pick(last)
        if isinstance(scripted, ModelReply):
            reply = scripted.model_copy(deep=True)
        else:
            reply = ModelReply(text=scripted, finish_reason="stop")
        updates: dict[str, Any] = {}
        if not reply.model:
            updates["model"] = self.name
        if not reply.tokens_in:
            updates["tokens_in"] = tokens_in
        if not reply.tokens_out:
            out = reply.text + "".join(json.dumps(c.arguments) for c in reply.tool_calls)
            updates["tokens_out"] = _words(out)
        if reply.finish_reason is None:
            updates["finish_reason"] = "tool_calls" if reply.tool_calls else "stop"
        return reply.model_copy(update=updates)

    def _pick(self, last: str) -> Reply:
        if self._match is not None:
            for key, reply in self._match.items():
                if key in last:
                    return reply
            raise ScriptExhausted(
                f"scripted model {self.name!r}: no scripted reply matches the last message "
                f"{last[-200:]!r}",
                hint=f"add a reply for one of its substrings; keys are {list(self._match)}",
            )
        if self._next >= len(self._replies):
            raise ScriptExhausted(
                f"scripted model {self.name!r} is out of replies: call {self._next + 1} "
                f"but only {len(self._replies)} were scripted",
                hint="script more replies, or check why the agent made more calls than expected "
                "(see .calls)",
            )
        reply = self._replies[self._next]
        self._next += 1
        return reply


def _content_text(content: Any) -> str:
    """The text of an OpenAI message ``content`` (a string, or a list of parts)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part.get("text", "") if isinstance(part, dict) else str(part) for part in content
        )
    return str(content)


def _words(text: str) -> int:
    return len(text.split())
