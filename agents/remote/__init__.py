"""Variants that carry their own code, run where that code cannot hurt (``exapt.agents.remote``).

- host side: ``host.run_in_sandbox`` (start the code in the task's sandbox, take the
  workspace), ``proxy.ModelProxy`` (the OpenAI-compatible endpoint on a unix socket that
  holds the keys, meters and budgets the calls, and records them), ``runtime`` (what of
  this interpreter and its packages the sandbox gets, read-only);
- sandbox side: ``boot`` -> ``main`` (import the variant's graph, run it), ``client``
  (``ProxyModel``, ``ReportingRecorder``), ``inside.InsideSandbox`` (its tools' sandbox).

``run_task`` chooses this path for a spec whose graph is a file of its own
(``graph: agent.py:build``); nothing here is imported for built-in graphs.
"""
