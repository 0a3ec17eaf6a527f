"""``FinetuneOperator``: weights in the archive — a child whose model is a LoRA policy trained on
the archive's own trusted passes (``exapt evolve --finetune-every N``).

Every N generations the loop asks it for one extra child of the best variant so far:

1. a dataset (``exapt.evolve.training``, format by ``method``) of the trusted passes on the
   feedback split that the archive's variants made (their evaluation runs in the store) —
   never a selection or test task, so no child is scored on a task it was trained on;
2. a LoRA trained on the base checkpoint of the run's model (``local`` or ``local:PATH``),
   resumable, under ``<archive>/finetune/g<g>/``;
3. the adapter registered as policy ``<archive>-g<g>`` (line ``<archive>``; parent = the
   parent variant's policy, if it runs on one);
4. the child: the parent's files with ``model: policy:<archive>-g<g>`` in its spec — a new
   variant id, so it is cached and staged like any other child, scored with that policy
   (the evaluator serves a variant's own ``policy:`` model).

No trusted pass yet (an empty dataset) means no child: ``last_skip`` says why.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from exapt.errors import ConfigError
from exapt.evolve.base import MutationContext, Proposal
from exapt.evolve.variant import Variant

POLICY_PREFIX = "policy:"


class FinetuneOperator:
    name = "finetune"

    def __init__(
        self,
        *,
        archive: str,
        model: str,
        feedback_split: str,
        method: str = "sft",
        training: Any = None,
    ) -> None:
        from exapt.evolve.improve_config import METHODS, base_checkpoint
        from exapt.evolve.training.train import TrainConfig

        if method not in METHODS:
            raise ConfigError(
                f"unknown fine-tuning method {method!r}", hint="sft, rerest, dpo or kto"
            )
        self.archive_name = archive
        self.model = model
        self.base = base_checkpoint(model)  # ConfigError now for a model that cannot be trained
        self.feedback_split = feedback_split
        self.method = method
        self.training = training or TrainConfig()
        self.generation = 0  # set by the loop before ``propose``
        self.last_skip: str | None = None

    def propose(self, parent: Variant, ctx: MutationContext, rng: random.Random) -> Proposal | None:
        from exapt.evolve.improve_config import METHODS
        from exapt.evolve.policies import PolicyRegistry
        from exapt.evolve.training.datasets import (
            DatasetConfig,
            EmptyDataset,
            build_dataset,
            save_dataset,
        )
        from exapt.evolve.training.train import train_adapter

        self.last_skip = None
        archive, evaluator = getattr(ctx, "archive", None), getattr(ctx, "evaluator", None)
        if archive is None or evaluator is None:
            raise ConfigError("the finetune operator needs the archive's context (ArchiveContext)")
        name = f"{self.archive_name}-g{self.generation}"
        registry = PolicyRegistry()
        fmt, repairs, method = METHODS[self.method]
        if not (registry.root / name / "policy.json").is_file():
            runs = self._runs(archive, evaluator)
            config = DatasetConfig(
                format=fmt,  # type: ignore[arg-type]
                repairs=repairs,
                splits=[self.feedback_split],
                runs=runs,
            )
            try:
                built = build_dataset(evaluator.store, config)
            except EmptyDataset as exc:
                self.last_skip = f"no training data yet: {exc.message}"
                return None
            save_dataset(built)
            out = Path(archive.root) / "finetune" / f"g{self.generation}"
            result = train_adapter(
                built, self.base, out, self.training.model_copy(update={"method": method}),
                resume=True, progress=False,
            )  # fmt: skip
            parent_model = str(parent.spec_data().get("model") or "")
            registry.register(
                name=name,
                line=self.archive_name,
                parent=parent_model.removeprefix(POLICY_PREFIX)
                if parent_model.startswith(POLICY_PREFIX)
                else None,
                adapter_dir=result.adapter_dir,
                base_model=self.model,
                base_checkpoint=self.base,
                method=self.method,
                dataset_hash=built.hash,
                dataset_path=built.path,
                hyperparameters=self.training.model_dump(mode="json"),
                training=result.metrics,
                is_base=bool(getattr(evaluator.model_obj, "is_base", True)),
            )
        policy = registry.get(name)
        child = parent.with_spec_data({**parent.spec_data(), "model": POLICY_PREFIX + name})
        return Proposal(
            variant=child,
            operator=self.name,
            description=f"model: {POLICY_PREFIX}{name} (LoRA r={policy.lora_rank}, "
            f"{policy.training.get('rows', '?')} rows of the archive's trusted passes, "
            f"{self.method})",
            changed_text=f"model: {POLICY_PREFIX}{name}",
            metadata={"policy": name, "dataset_hash": policy.dataset_hash},
        )

    def _runs(self, archive: Any, evaluator: Any) -> list[str]:
        """The store runs holding the archive's variants' evaluations."""
        runs = []
        for entry in archive.entries():
            run_id = evaluator.run_id(archive.variant(entry.variant_id))
            if evaluator.store.get_run(run_id) is not None:
                runs.append(run_id)
        return runs
