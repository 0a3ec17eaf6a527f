"""``GraphOptionsOperator``: move one graph option to a neighbouring value.

The knobs are the options the variant's graph reads (``agents/graphs/*.py``) with the
graph's own defaults, each over a short ladder of sensible values; a move goes one rung up
or down (from a value off the ladder, to a random rung). More than one sample at
temperature 0 would draw the same completion again, so such a move also raises the
temperature. Memory k's are knobs only with ``memory_knobs`` (evolve evaluates with memory
off, so that a result depends only on its cache key: there they would change nothing).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from exapt.evolve.base import MutationContext, Proposal
from exapt.evolve.variant import Variant

#: graph -> option -> (the graph's default, the ladder of values)
KNOBS: dict[str, dict[str, tuple[Any, tuple[Any, ...]]]] = {
    "completion": {
        "temperature": (0.0, (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)),
        "samples": (1, (1, 2, 4, 8)),
        "retries": (2, (0, 1, 2, 3, 4)),
        "max_new_tokens": (256, (128, 192, 256, 384, 512)),
    },
    "text_coder": {
        "temperature": (0.0, (0.0, 0.2, 0.4, 0.7, 1.0)),
        "max_new_tokens": (1024, (256, 512, 1024, 2048)),
        "keep_observations": (5, (2, 3, 5, 8, 12)),
        "max_output_chars": (10000, (2000, 5000, 10000, 20000)),
    },
    "tool_coder": {
        "temperature": (0.0, (0.0, 0.2, 0.4, 0.7, 1.0)),
        "keep_observations": (5, (2, 3, 5, 8, 12)),
        "max_output_chars": (10000, (2000, 5000, 10000, 20000)),
    },
}
MEMORY_KNOBS: dict[str, tuple[int, tuple[int, ...]]] = {
    "reflections_k": (3, (0, 1, 2, 3, 5)),
    "skills_k": (3, (0, 1, 2, 3, 5)),
    "insights_k": (5, (0, 2, 3, 5, 8)),
}


@dataclass
class GraphOptionsOperator:
    name = "graph_options"
    memory_knobs: bool = False
    last_skip: str | None = None

    def propose(self, parent: Variant, ctx: MutationContext, rng: random.Random) -> Proposal | None:
        data = parent.spec_data()
        knobs = dict(KNOBS.get(str(data.get("graph")), {}))
        options = dict(data.get("graph_options") or {})
        memory = dict(data.get("memory") or {})
        choices = [("option", k) for k in knobs]
        if self.memory_knobs:
            choices += [("memory", k) for k in MEMORY_KNOBS]
        if not choices:
            self.last_skip = f"graph {data.get('graph')!r} has no known knobs"
            return None
        kind, knob = rng.choice(choices)
        default, ladder = knobs[knob] if kind == "option" else MEMORY_KNOBS[knob]
        current = (options if kind == "option" else memory).get(knob, default)
        new = _neighbour(current, ladder, rng)
        changes = [f"{knob} {current} -> {new}"]
        if kind == "memory":
            data["memory"] = {**memory, knob: new}
        else:
            options[knob] = new
            if knob == "samples" and new > 1 and float(options.get("temperature", 0.0)) == 0.0:
                options["temperature"] = 0.4
                changes.append("temperature 0.0 -> 0.4 (samples > 1 need it)")
            data["graph_options"] = options
        return Proposal(
            variant=parent.with_spec_data(data),
            operator=self.name,
            description="; ".join(changes),
            metadata={"knob": knob, "from": current, "to": new},
        )


def _neighbour(current: Any, ladder: tuple[Any, ...], rng: random.Random) -> Any:
    if current in ladder:
        i = ladder.index(current)
        steps = [j for j in (i - 1, i + 1) if 0 <= j < len(ladder)]
        return ladder[rng.choice(steps)]
    return rng.choice([v for v in ladder if v != current])
