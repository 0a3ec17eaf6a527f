"""Self-training: datasets from the trajectory store, LoRA training with TRL, the pieces of
``exapt improve`` (``exapt.evolve.improve``) and the policy registry (``exapt.evolve.policies``).

- ``examples.py``: one training example per stored model call, with the context it saw;
- ``repairs.py``: Re-ReST repairs (a failed attempt corrected after feedback);
- ``config.py``: ``DatasetConfig`` and ``TrainConfig``;
- ``datasets.py``: ``build_dataset`` (sft / dpo / kto): the attempts selected, then the rows of
  ``rows.py``, kept by ``filters.py`` (best-of, dedupe, caps); ``datasheet.py``: the content
  hash, the datasheet and ``save_dataset`` / ``load_saved``;
- ``lengths.py``: token lengths as TRL counts them, and the rows that fit; ``templates.py``:
  the training template;
- ``train.py``: ``train_adapter`` (TRL + peft LoRA), on the trainer of ``trainers.py``.

Heavy libraries (datasets, torch, transformers, trl, peft) load only inside the modules that
use them; importing this package is cheap.
"""
