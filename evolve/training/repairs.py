"""Repaired failures (Re-ReST): an attempt that failed, the feedback or reflection it got, and a
corrected attempt that passed become training examples *for the uncorrected prompt* — the
model learns to give the corrected answer without being told what went wrong.

Two kinds of repair are found in the store:

- within one attempt (the ``completion`` graph): a round of drafts failed the visible checks,
  the next round's prompt carried the failed draft and its error, and a draft of that round
  was written and passed (trusted). The repair: the attempt's first prompt -> that draft.
- across trials (Reflexion): trial 0 of a task failed, a later trial of the same run — whose
  prompt carried memory's reflections on the failure — passed (trusted). The repair: trial
  0's first prompt -> the passed trial's written draft (completion calls); for chat calls, each
  call of the passed trial with its opening context (the messages before the first assistant
  turn) replaced by trial 0's.

A repair whose prompt equals the corrected one (nothing was corrected) is not made.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from exapt.evolve.training.examples import CallExample


def repaired_examples(attempts: Iterable[list[CallExample]]) -> list[CallExample]:
    """Repairs (module docstring) from the examples of stored attempts, one list per attempt."""
    by_attempt = [a for a in attempts if a]
    out: list[CallExample] = []
    for examples in by_attempt:
        out.extend(_within_attempt(examples))
    groups: dict[tuple[str, str], dict[int, list[CallExample]]] = defaultdict(dict)
    for examples in by_attempt:
        first = examples[0]
        run_id = first.trajectory_id.rsplit("/", 2)[0]
        groups[(run_id, first.task_id)][first.trial] = examples
    for trials in groups.values():
        out.extend(_across_trials(trials))
    return out


def _within_attempt(examples: list[CallExample]) -> list[CallExample]:
    first = examples[0]
    if first.conversational or not first.passed:
        return []
    written = next((e for e in examples if e.written and e.label), None)
    if written is None or written.round == 0 or written.prompt == first.prompt:
        return []
    return [
        written.with_prompt(first.prompt, source="repair", extra={"repaired_round": written.round})
    ]


def _across_trials(trials: dict[int, list[CallExample]]) -> list[CallExample]:
    failed = trials.get(0)
    if not failed or failed[0].passed or failed[0].label is None:
        return []
    passed = next((trials[t] for t in sorted(trials) if t > 0 and trials[t][0].passed), None)
    if passed is None:
        return []
    extra = {"failed_trajectory_id": failed[0].trajectory_id}
    if not failed[0].conversational:
        written = next((e for e in passed if e.written and e.label), None)
        if written is None or isinstance(written.prompt, list):
            return []
        if written.prompt == failed[0].prompt:
            return []
        return [written.with_prompt(failed[0].prompt, source="repair", extra=extra)]
    lead = _opening(failed[0].prompt)
    out = []
    for call in passed:
        if call.label is not True or not isinstance(call.prompt, list):
            continue
        theirs = _opening(call.prompt)
        prompt = lead + call.prompt[len(theirs) :]
        if prompt != call.prompt:
            out.append(call.with_prompt(prompt, source="repair", extra=extra))
    return out


def _opening(prompt: Any) -> list[dict[str, Any]]:
    """The messages before the first assistant turn: the system and task prompts."""
    if not isinstance(prompt, list):
        return []
    lead = []
    for message in prompt:
        if message.get("role") == "assistant":
            break
        lead.append(message)
    return lead
