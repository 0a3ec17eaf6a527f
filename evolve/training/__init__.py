"""Self-training: datasets from the trajectory store, LoRA training with TRL, the pieces of
``exapt improve`` (``exapt.evolve.improve``) and the policy registry (``exapt.evolve.policies``).

- ``examples.py``: one training example per stored model call, with the context it saw;
- ``repairs.py``: Re-ReST repairs (a failed attempt corrected after feedback);
- ``datasets.py``: ``build_dataset`` (sft / dpo / kto) and ``save_dataset`` (hash + datasheet);
- ``lengths.py``: token lengths as TRL counts them; ``templates.py``: the training template;
- ``train.py``: ``train_adapter`` (TRL + peft LoRA).

Heavy libraries (datasets, torch, transformers, trl, peft) load only inside the modules that
use them; importing this package is cheap.
"""
