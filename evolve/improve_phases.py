"""The phases of a round of ``exapt improve`` (``improve.py``'s module docstring), each a
function of the loop (``Improve``) returning what the round records under its name:
``collect`` (the train split sampled ``samples`` times), ``dataset`` (built and saved with its
hash), ``train`` (a LoRA on the base checkpoint, resumable), ``register`` (a candidate policy),
``promote`` (the paired intervals of the change, and the registry's verdict). The gate and
report phases are evaluations (``Improve.evaluate``); ``Improve`` runs the phases in order.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from exapt.evolve.improve_config import METHODS
from exapt.evolve.improve_state import evaluation_of
from exapt.evolve.policies import PolicyRegistry, PromotionRefused
from exapt.evolve.stats import paired_bootstrap
from exapt.evolve.training.datasets import DatasetConfig, build_dataset, load_saved, save_dataset
from exapt.evolve.training.intervals import wilson
from exapt.evolve.training.train import train_adapter
from exapt.memory.trajectories import TrajectoryStore

if TYPE_CHECKING:
    from exapt.evolve.improve import Improve


def collect(loop: Improve, k: int, parent: str | None) -> dict[str, Any]:
    runs: list[str] = []
    per_task: dict[str, list[float]] = {}
    attempts = passed = 0
    for s in range(loop.config.samples):
        result = loop.evaluate(
            f"r{k}-c{s}", loop.config.train_split, parent, temperature=loop.config.temperature
        )
        runs.append(result["run_id"])
        for task, value in result["per_task"].items():
            per_task.setdefault(task, []).append(value)
        attempts += result["n_tasks"]
        passed += result["passed"]
    return {
        "runs": runs,
        "split": loop.config.train_split,
        "attempts": attempts,
        "passed": passed,
        "pass_rate": passed / attempts if attempts else 0.0,
        "ci95": wilson(passed, attempts),
        "tasks_solved": sum(any(v) for v in per_task.values()),
        "n_tasks": len(per_task),
    }


def dataset(loop: Improve, k: int) -> dict[str, Any]:
    fmt, repairs, _ = METHODS[loop.config.method]
    rounds = loop.state["rounds"][:k] if loop.config.accumulate else [loop.state["rounds"][k - 1]]
    runs = [run for r in rounds if "collect" in r for run in r["collect"]["runs"]]
    config = DatasetConfig(
        format=fmt,  # type: ignore[arg-type]
        repairs=repairs,
        splits=[loop.config.train_split],
        runs=runs,
        best_of=loop.config.best_of,
        max_per_task=loop.config.max_per_task,
    )
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(loop.base_checkpoint)
    with TrajectoryStore() as store:
        built = build_dataset(store, config, tokenizer=tokenizer)
    path = save_dataset(built)
    sheet = built.datasheet
    return {
        "hash": built.hash,
        "path": str(path),
        "rows": len(built),
        "tasks": sheet["tasks"],
        "by_source": sheet["by_source"],
        "tokens": sheet.get("tokens", {}),
    }


def train(loop: Improve, k: int, r: dict[str, Any]) -> dict[str, Any]:
    built = load_saved(r["dataset"]["path"])
    _, _, method = METHODS[loop.config.method]
    config = loop.config.training.model_copy(update={"method": method})
    out = loop.run_dir / f"round-{k}" / "train"

    def notify(entry: dict[str, Any]) -> None:
        loop.on_event("train", {"round": k, **entry})

    result = train_adapter(built, loop.base_checkpoint, out, config, resume=True, progress=notify)
    return {**result.metrics, "adapter_dir": str(result.adapter_dir)}


def register(loop: Improve, k: int, r: dict[str, Any], parent: str | None) -> str:
    name = f"{loop.line}-r{k}"
    registry = PolicyRegistry()
    if (registry.root / name / "policy.json").is_file():  # registered before a crash
        return name
    training = {key: v for key, v in r["train"].items() if key != "adapter_dir"}
    registry.register(
        name=name,
        line=loop.line,
        parent=parent,
        adapter_dir=Path(r["train"]["adapter_dir"]),
        base_model=loop.config.model,
        base_checkpoint=loop.base_checkpoint,
        method=loop.config.method,
        dataset_hash=r["dataset"]["hash"],
        dataset_path=r["dataset"]["path"],
        hyperparameters=loop.config.training.model_dump(mode="json"),
        training=training,
        metrics_before=summary(evaluation_of(loop.state, parent, "gate", loop.run_id)),
        is_base=bool(getattr(loop.resolve(loop.config.model), "is_base", True)),
    )
    return name


def promote(loop: Improve, r: dict[str, Any], parent: str | None) -> dict[str, Any]:
    registry = PolicyRegistry()
    registry.update_metrics(r["policy"], metrics_after=summary(r["gate"]))
    verdict: dict[str, Any] = {"policy": r["policy"]}
    before = evaluation_of(loop.state, parent, "gate", loop.run_id)
    verdict["gate_paired"] = paired_bootstrap(before["per_task"], r["gate"]["per_task"])
    if loop.config.report_split:
        report_before = evaluation_of(loop.state, parent, "report", loop.run_id)
        verdict["report_paired"] = paired_bootstrap(
            report_before["per_task"], r["report"]["per_task"]
        )
    try:
        registry.promote(r["policy"], min_gain=loop.config.min_gain)
        verdict["promoted"] = True
    except PromotionRefused as exc:
        verdict["promoted"] = False
        verdict["reason"] = exc.message
    return verdict


def summary(evaluation: dict[str, Any]) -> dict[str, Any]:
    """An evaluation without its per-task results (what a policy record keeps)."""
    return {k: v for k, v in evaluation.items() if k != "per_task"}
