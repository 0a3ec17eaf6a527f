"""Evolve (``exapt.evolve``): an archive of agent variants, grown by selection, mutation and
staged evaluation.

The nouns (``base``): ``Variant`` (a directory, id = hash of its tree; ``variant``),
``Archive`` (SQLite + variant folders; ``archive``), ``Selector`` (``selection/``),
``Operator`` (``operators/``), ``Evaluator`` (``evaluator``, cached by ``cache``, staged
by ``staged``), ``Executor`` (``executors``). The loop is ``loop.Evolution``; ``prepare``
builds one from an ``EvolveConfig``; ``report`` renders an archive as one HTML page.

Nothing outside the CLI imports this package (an agent does not know it is evolved).

Example:
    from exapt.evolve.config import make_config
    from exapt.evolve.prepare import close, prepare
    evolution = prepare(make_config(suite="humaneval", archive="he1", generations=3))
    try:
        print(evolution.run()["best"])
    finally:
        close(evolution)
"""
