"""Insights: general rules distilled from success/failure pairs, kept with ExpeL's
operations and counters.

A chat model (a ``Writer``) compares a failed and a successful attempt at one task with the
current rules and answers with operations, one per line (``prompts/insights.md``):

    ADD: <rule>          a new rule, counter 2
    EDIT <n>: <rule>     rewrite rule n, counter + 1
    AGREE <n>            counter + 1
    REMOVE <n>           counter - 1; a rule at 0 is deleted

``parse_ops`` tolerates junk (bullets, bold, numbering, prose, bad numbers); what it cannot
read is skipped. The strongest rules (highest counter) go into the system prompt.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass
from typing import Literal

from exapt.errors import ExaptError
from exapt.memory.base import Writer
from exapt.memory.render import clip, render
from exapt.memory.store import Item, MemoryStore

KIND = "insights"
ADD_COUNT = 2  # as in ExpeL: a new rule survives one disagreement
DUPLICATE_SIMILARITY = 0.95  # an ADD this close to an existing rule is an AGREE


@dataclass
class Op:
    op: Literal["ADD", "EDIT", "AGREE", "REMOVE"]
    number: int | None = None  # 1-based position in the list shown to the model
    text: str = ""


_CLEAN = re.compile(r"^[\s>*#\-•\d.)\]]*")
_OP = re.compile(
    r"^(?P<op>ADD|EDIT|AGREE|REMOVE)\b\s*(?:rule\s*)?#?\s*(?P<num>\d+)?\s*[:.\-)]?\s*(?P<text>.*)$",
    re.IGNORECASE,
)


def parse_ops(reply: str) -> list[Op]:
    """The operations in a model's reply, in order; lines that are not one are skipped."""
    ops: list[Op] = []
    for raw in reply.splitlines():
        line = _CLEAN.sub("", raw.replace("**", "").replace("`", "")).strip()
        match = _OP.match(line)
        if not match:
            continue
        kind = match["op"].upper()
        number = int(match["num"]) if match["num"] else None
        text = match["text"].strip().strip('"').strip()
        if kind == "ADD":
            if number is not None and not text:  # "ADD 3" makes no sense; "ADD: 3 retries" does
                continue
            if number is not None:
                text = f"{number} {text}".strip()
            if len(text) >= 8:
                ops.append(Op("ADD", None, clip(text, 300)))
        elif number is not None:
            if kind == "EDIT" and len(text) < 8:
                continue
            ops.append(Op(kind, number, clip(text, 300) if kind == "EDIT" else ""))  # type: ignore[arg-type]
    return ops


class Insights:
    """Rules in the ``insights`` collection of a ``MemoryStore``.

    Example:
        ins = Insights(store)
        ins.apply(parse_ops("ADD: Run the visible tests before submitting."))
        ins.top(5)
    """

    def __init__(self, store: MemoryStore, *, max_rules_shown: int = 20) -> None:
        self.store = store
        self.max_rules_shown = max_rules_shown

    def top(self, k: int = 5, suite: str | None = None) -> list[Item]:
        """The ``k`` rules with the highest counters (global rules and ``suite``'s)."""
        items = self.store.get(KIND)
        if suite is not None:
            items = [i for i in items if i.metadata.get("suite", "") in ("", suite)]
        items.sort(
            key=lambda i: (-int(i.metadata.get("count", 0)), float(i.metadata.get("created_at", 0)))
        )
        return items[:k]

    def apply(
        self, ops: list[Op], shown: list[Item] | None = None, *, suite: str = ""
    ) -> dict[str, int]:
        """Apply ``ops``; numbers refer to ``shown`` (default: the list ``top`` gives now).
        Returns how many of each operation took effect."""
        shown = self.top(self.max_rules_shown) if shown is None else shown
        done = {"ADD": 0, "EDIT": 0, "AGREE": 0, "REMOVE": 0}
        now = time.time()
        counts = {i.id: int(i.metadata.get("count", 0)) for i in shown}
        for op in ops:
            if op.op == "ADD":
                near = self.store.query(KIND, op.text, 1) if self.store.count(KIND) else []
                if near and (near[0].similarity or 0) >= DUPLICATE_SIMILARITY:
                    target = near[0]
                    counts[target.id] = (
                        counts.get(target.id, int(target.metadata.get("count", 0))) + 1
                    )
                    self.store.update(
                        KIND, target.id, {"count": counts[target.id], "updated_at": now}
                    )
                    done["AGREE"] += 1
                    continue
                rule_id = "insight:" + hashlib.sha1(f"{op.text}|{now}".encode()).hexdigest()[:16]
                meta = {
                    "kind": "insight",
                    "text": op.text,
                    "count": ADD_COUNT,
                    "suite": suite,
                    "created_at": now,
                    "updated_at": now,
                }
                self.store.add(KIND, [rule_id], [op.text], [meta])
                done["ADD"] += 1
                continue
            if op.number is None or not 1 <= op.number <= len(shown):
                continue
            item = shown[op.number - 1]
            if item.id not in counts:  # removed earlier in this reply
                continue
            if op.op == "REMOVE":
                counts[item.id] -= 1
                if counts[item.id] <= 0:
                    self.store.delete(KIND, [item.id])
                    del counts[item.id]
                else:
                    self.store.update(KIND, item.id, {"count": counts[item.id], "updated_at": now})
            elif op.op == "AGREE":
                counts[item.id] += 1
                self.store.update(KIND, item.id, {"count": counts[item.id], "updated_at": now})
            else:  # EDIT: new text, new vector, counter + 1
                counts[item.id] += 1
                meta = {
                    **item.metadata,
                    "text": op.text,
                    "count": counts[item.id],
                    "updated_at": now,
                }
                self.store.add(KIND, [item.id], [op.text], [meta])
            done[op.op] += 1
        return done

    def distill(
        self,
        write: Writer,
        *,
        instruction: str,
        failure: str,
        success: str,
        suite: str = "",
        max_ops: int = 3,
    ) -> dict[str, int]:
        """Ask ``write`` (a chat model) for operations comparing ``failure`` and ``success``
        and apply them. A failed call changes nothing."""
        shown = self.top(self.max_rules_shown)
        prompt = render(
            "insights",
            suite=suite,
            rules=[
                {"text": i.metadata.get("text", ""), "count": i.metadata.get("count", 0)}
                for i in shown
            ],
            instruction=clip(instruction, 1500),
            failure=clip(failure, 2000),
            success=clip(success, 2000),
            max_ops=max_ops,
        )
        try:
            reply = write(prompt)
        except ExaptError:
            return {"ADD": 0, "EDIT": 0, "AGREE": 0, "REMOVE": 0}
        return self.apply(parse_ops(reply or "")[:max_ops], shown, suite=suite)
