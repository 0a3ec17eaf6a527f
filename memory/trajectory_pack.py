"""Each request stored once: a model step's ``input`` packed into references to messages
stored once per attempt, and unpacked again when read.

An agent sends the whole conversation on every model call, so storing every call's input
as sent grows with the square of the steps (one 2 MB tool argument, re-sent in 20 calls,
is 40 MB). Packed, a step's ``input`` is ``{"messages": {"$refs": [h1, h2, ...]}, "tools":
{"$ref": h}, ...}``; each distinct message (and tool list) is stored once under ``h``, the
hash of its canonical JSON. Reading rebuilds exactly what each call was sent.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

REFS = "$refs"
REF = "$ref"


class Packer:
    """Packs the steps of one attempt; ``blobs`` (hash -> JSON) is what they reference.
    Objects met again (the same message dict in the next call's list) are hashed once."""

    def __init__(self) -> None:
        self.blobs: dict[str, str] = {}
        self._seen: dict[int, tuple[Any, str]] = {}

    def pack(self, step_input: Any) -> Any:
        if not (isinstance(step_input, dict) and isinstance(step_input.get("messages"), list)):
            return step_input
        packed = dict(step_input)
        packed["messages"] = {REFS: [self._put(m) for m in step_input["messages"]]}
        if isinstance(step_input.get("tools"), list):
            packed["tools"] = {REF: self._put(step_input["tools"])}
        return packed

    def _put(self, value: Any) -> str:
        seen = self._seen.get(id(value))
        if seen is not None and seen[0] is value:
            return seen[1]
        text = json.dumps(value, sort_keys=True, default=str)
        digest = hashlib.sha256(text.encode()).hexdigest()[:32]
        self.blobs.setdefault(digest, text)
        self._seen[id(value)] = (value, digest)  # keeps ``value`` alive: its id stays its own
        return digest


def unpack(step_input: Any, blobs: dict[str, str]) -> Any:
    """The input as it was sent; an input stored before packing is returned as it is.
    ``KeyError`` when a referenced blob is missing (a damaged store)."""
    if not isinstance(step_input, dict):
        return step_input
    messages, tools = step_input.get("messages"), step_input.get("tools")
    if not (isinstance(messages, dict) and isinstance(messages.get(REFS), list)):
        return step_input
    out = dict(step_input)
    out["messages"] = [json.loads(blobs[h]) for h in messages[REFS]]
    if isinstance(tools, dict) and isinstance(tools.get(REF), str):
        out["tools"] = json.loads(blobs[tools[REF]])
    return out
