"""``ReflectPromptOperator``: a mutator model rewrites one prompt from the parent's failures.

The mutator reads the prompt's current text and up to ``failures`` failed attempts of the
parent on the feedback (train) split: the public task, the end of what the agent
answered, and the scorer's visible feedback (``Score.feedback``, redacted of any line that
quotes the task's hidden data) — never the hidden tests. Its reply's first fenced block is
the new prompt; it must parse and pass ``check_template`` (prompts render in the exapt
process), or the proposal is dropped with the reason in ``last_skip``.

Works with any model string (chat models get one user message; base models a completion
of the same text), and with a ``ScriptedModel`` in tests.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exapt.errors import ConfigError
from exapt.evolve.base import MutationContext, Proposal
from exapt.evolve.safety import check_template
from exapt.evolve.variant import Variant
from exapt.records import Trajectory

TEMPLATE = Path(__file__).resolve().parent.parent / "prompts" / "reflect_prompt.md.j2"
#: graph -> the prompts worth rewriting first (others only if these are missing)
TARGETS = {"completion": ("completion",), "text_coder": ("system", "instance"),
           "tool_coder": ("system", "instance")}  # fmt: skip
SKIP = {"exemplars"}
_FENCE = re.compile(r"```[^\n`]*\n(.*?)\n?```", re.DOTALL)


@dataclass
class ReflectPromptOperator:
    name = "reflect_prompt"
    failures: int = 3
    answer_chars: int = 1500
    last_skip: str | None = None
    skip_cost: tuple[float, int] = (0.0, 0)  # what a dropped proposal's mutator call cost

    def propose(self, parent: Variant, ctx: MutationContext, rng: random.Random) -> Proposal | None:
        self.skip_cost = (0.0, 0)
        graph = str(parent.spec_data().get("graph"))
        names = [n for n in parent.prompt_names() if n not in SKIP]
        preferred = [n for n in TARGETS.get(graph, ()) if n in names]
        if not names:
            self.last_skip = "the variant has no prompt to rewrite"
            return None
        component = rng.choice(preferred or names)
        failed = ctx.failed_trajectories(parent, self.failures)
        if not failed:
            self.last_skip = "the parent failed no feedback task: nothing to learn from"
            return None
        request = self.request(component, parent.prompt(component), failed, ctx)
        model = ctx.mutator()
        if getattr(model, "is_base", False):
            reply = model.complete(request, max_tokens=1024)
        else:
            reply = model.chat([{"role": "user", "content": request}], max_tokens=2048)
        cost, tokens = reply.cost_usd, reply.tokens_in + reply.tokens_out
        new_text = _fenced(reply.text)
        if new_text is None:
            return self._skip("the mutator's reply has no fenced block", cost, tokens)
        if new_text.strip() == parent.prompt(component).strip():
            return self._skip("the mutator gave the prompt back unchanged", cost, tokens)
        try:
            check_template(component, new_text)
        except ConfigError as exc:
            return self._skip(f"the mutator's prompt is not allowed: {exc.message}", cost, tokens)
        return Proposal(
            variant=parent.with_prompt(component, new_text),
            operator=self.name,
            description=f"rewrite prompt {component!r} from {len(failed)} failed attempt(s)",
            changed_text=new_text,
            cost_usd=cost,
            tokens=tokens,
            metadata={"component": component, "failures": [t.task_id for t in failed],
                      "mutator_reply": reply.text[:4000]},
        )  # fmt: skip

    def request(
        self, component: str, current: str, failed: list[Trajectory], ctx: MutationContext
    ) -> str:
        """The mutator's prompt (public task text and visible feedback only)."""
        import jinja2

        from exapt.evolve.safety import redact_feedback

        failures: list[dict[str, Any]] = []
        for t in failed:
            task = ctx.task(t.task_id)
            if task is None:
                continue
            failures.append(
                {
                    "task_id": t.task_id,
                    "instruction": task.instruction,
                    "answer": _answer(t)[-self.answer_chars :],
                    "feedback": redact_feedback(t.result.feedback or "(none)", task.hidden),
                }
            )
        env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)
        template = env.from_string(TEMPLATE.read_text())
        return template.render(component=component, current=current, failures=failures)

    def _skip(self, reason: str, cost: float, tokens: int) -> Proposal | None:
        self.last_skip = reason
        self.skip_cost = (cost, tokens)
        return None


def _fenced(text: str) -> str | None:
    match = _FENCE.search(text or "")
    return match.group(1) if match else None


def _answer(t: Trajectory) -> str:
    """What the agent finally said or wrote: its last model outputs, joined."""
    outputs = []
    for step in t.steps:
        if step.kind == "model":
            out = step.output
            if isinstance(out, dict):
                text = str(out.get("content") or "")
                for call in out.get("tool_calls") or []:
                    fn = call.get("function") or {}
                    text += f"\n[{fn.get('name')}] {fn.get('arguments')}"
                outputs.append(text)
            else:
                outputs.append(str(out or ""))
    return "\n---\n".join(outputs[-2:])
