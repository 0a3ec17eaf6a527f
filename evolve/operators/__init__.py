"""Mutation operators, one per file, chosen by short name (or ``module:Class``).

- ``reflect_prompt``: a mutator model reads the parent's failed attempts (the scorer's
  visible feedback only) and rewrites one prompt (GEPA, Agent Symbolic Learning);
- ``graph_options``: moves one knob the variant's graph reads (temperature, samples,
  retries, max tokens...) to a neighbouring value — no model needed;
- ``add_exemplar`` / ``prune_exemplar``: adds a solved example, drawn from passed attempts
  on the feedback (train) split, to the variant's main prompt, or drops one (PromptQuine);
- ``merge``: recombines two variants' components against their common ancestor (GEPA).

Example:
    op = make_operator("graph_options")
    proposal = op.propose(parent, ctx, random.Random(0))
"""

from __future__ import annotations

from typing import Any

from exapt.evolve.base import Operator
from exapt.registry import resolve

KNOWN_OPERATORS: dict[str, str] = {
    "reflect_prompt": "exapt.evolve.operators.reflect_prompt:ReflectPromptOperator",
    "graph_options": "exapt.evolve.operators.graph_options:GraphOptionsOperator",
    "add_exemplar": "exapt.evolve.operators.exemplars:AddExemplarOperator",
    "prune_exemplar": "exapt.evolve.operators.exemplars:PruneExemplarOperator",
    "merge": "exapt.evolve.operators.merge:MergeOperator",
}
#: The operators that need no model: evolution works with the weak embedded model.
LLM_FREE = ("graph_options", "add_exemplar", "prune_exemplar", "merge")


def make_operator(name: str, **options: Any) -> Operator:
    """The operator called ``name`` (``ConfigError`` lists the valid names)."""
    operator: Operator = resolve("mutation operator", name, KNOWN_OPERATORS)(**options)
    return operator
