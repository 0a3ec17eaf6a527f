"""``Improve``: the self-improvement loop of ``exapt improve`` — collect, build a dataset,
train a LoRA policy, evaluate it on held-out tasks, promote it if it is not worse, repeat.

Round k, with the line's current policy (the base model until one is promoted):

1. **collect**: ``samples`` attempts per task of the train split, each its own engine run
   (``<id>-r<k>-c<s>``) with the default agent at ``temperature`` > 0, memory off;
2. **dataset**: ``build_dataset`` over the collection runs (every round's so far with
   ``accumulate``) in the method's format — ``sft`` (ReST-EM / STaR: trusted passes),
   ``rerest`` (the same plus Re-ReST repairs), ``dpo`` (pairs), ``kto`` — saved with its hash;
3. **train**: ``train_adapter`` on the base checkpoint (always the base: every policy is one
   LoRA over it, servable per request), resumable from its checkpoints;
4. **register** the adapter as policy ``<line>-r<k>`` (a candidate; parent = current policy);
5. **gate**: the candidate on the gate split (``dev``), compared with the parent on the same
   tasks; **report**: the candidate on the report split (``test``; never trained or selected
   on), with the paired 95% interval of the change against the parent;
6. **promote** when the gate allows (``min_gain``); the next round collects with it.

A round whose dataset is empty (no trusted pass yet) trains nothing and says so; the next
round collects again. The state is ``<home>/runs/<id>/improve.json`` (config, the base's and
every round's figures, the phases done), written atomically after each phase: ``resume``
skips what is done, evaluations resume by run id in the store, training from its checkpoint.

Here: the loop (rounds, phases in order, evaluations through the engine); the phases in
``improve_phases.py``, the state, lock and resume in ``improve_state.py``, the config, the
methods and the base model in ``improve_config.py`` (re-exported here).

Example:
    loop = Improve.prepare(ImproveConfig(suite="humaneval", rounds=2, samples=4))
    state = loop.run()
    state["rounds"][-1]["report"]["pass_rate"]
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exapt.agents.models.base import Model
from exapt.agents.spec import AgentSpec
from exapt.engine import Engine, LocalExecutor, Target
from exapt.engine.config import new_run_id
from exapt.engine.resolve import check_backend, select_tasks
from exapt.errors import ConfigError, ExaptError
from exapt.evolve import improve_phases as phases
from exapt.evolve.improve_config import (
    IMPROVE_SCHEMA,
    METHODS,
    ImproveConfig,
    base_checkpoint,
    make_improve_config,
    serve_model,
)
from exapt.evolve.improve_state import (
    exclusive,
    load_state,
    new_state,
    save_state,
    saved_config,
)
from exapt.evolve.policies import PolicyRegistry
from exapt.evolve.training.datasets import EmptyDataset
from exapt.evolve.training.intervals import wilson
from exapt.memory.trajectories import TrajectoryStore
from exapt.paths import runs_dir
from exapt.records import Task
from exapt.tasks import Suite, load_suite, suite_sandbox_factory

PHASES = ("collect", "dataset", "train", "register", "gate", "report", "promote")

Event = Callable[[str, dict[str, Any]], None]


class ImproveFailed(ExaptError):
    """An evaluation of the loop failed (a model server down...); resume continues it."""


@dataclass
class Improve:
    """One self-improvement run, prepared: tasks, base checkpoint and backend resolved."""

    run_id: str
    config: ImproveConfig
    suite: Suite
    tasks: dict[str, list[Task]]  # split -> tasks
    base_checkpoint: Path
    backend: str
    resolve: Callable[[str], Model] = field(default=lambda name: serve_model(name))
    on_event: Event = field(default=lambda kind, data: None)
    state: dict[str, Any] = field(default_factory=dict)

    # --- preparation ------------------------------------------------------------------

    @classmethod
    def prepare(
        cls, config: ImproveConfig, *, run_id: str | None = None, **options: Any
    ) -> Improve:
        """Resolve everything; ``ConfigError`` for bad input, before anything is written."""
        suite = load_suite(config.suite)
        splits: list[str] = [config.train_split, config.gate_split]
        if config.report_split:
            splits.append(config.report_split)
        tasks = {s: select_tasks(suite, config.suite, s, None, config.limit) for s in splits}
        base = base_checkpoint(config.model)
        backend = check_backend(config.sandbox)
        loop = cls(
            run_id=run_id or f"improve-{new_run_id()}",
            config=config,
            suite=suite,
            tasks=tasks,
            base_checkpoint=base,
            backend=backend,
            **options,
        )
        saved = load_state(loop.run_dir)
        if saved is None and PolicyRegistry().list(loop.line):
            raise ConfigError(
                f"line {loop.line!r} already has policies (from another run)",
                hint="pick another --line, or continue that run with --resume",
            )
        loop.state = saved or new_state(loop.run_id, loop.line, config, base, tasks)
        return loop

    @classmethod
    def resume(cls, run_id: str, **options: Any) -> Improve:
        """The improve run ``run_id`` from its ``improve.json``; ``ConfigError`` if none."""
        return cls.prepare(saved_config(run_id), run_id=run_id, **options)

    @property
    def run_dir(self) -> Path:
        return runs_dir() / self.run_id

    @property
    def line(self) -> str:
        return self.config.line or self.run_id

    # --- the loop ---------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        """Run (or resume) every round; return the state (also in ``improve.json``)."""
        with exclusive(self.run_dir, self.run_id):
            self.state["status"] = "running"
            self._save()
            try:
                self._baseline()
                for k in range(1, self.config.rounds + 1):
                    self._round(k)
                self.state["status"] = "done"
            except KeyboardInterrupt:
                self.state["status"] = "interrupted"
                raise
            except ExaptError as exc:
                self.state["status"] = "failed"
                self.state["error"] = str(exc)
                raise
            finally:
                self.state["finished_at"] = time.time()
                self._save()
        return self.state

    def _baseline(self) -> None:
        """The base model on the gate and report splits (what round 1 must not be worse than)."""
        base = self.state["base"]
        if "gate" not in base:
            base["gate"] = self.evaluate("r0-gate", self.config.gate_split, None)
            self._save()
        if self.config.report_split and "report" not in base:
            base["report"] = self.evaluate("r0-report", self.config.report_split, None)
            self._save()

    def _round(self, k: int) -> None:
        rounds = self.state["rounds"]
        if len(rounds) < k:
            rounds.append({"round": k, "done": [], "started": time.time()})
        r = rounds[k - 1]
        if "promote" in r["done"] or r.get("skipped"):
            return
        started = time.monotonic()
        r.setdefault("parent", self._current())
        parent = r["parent"]
        self._phase(r, "collect", lambda: phases.collect(self, k, parent))
        try:
            self._phase(r, "dataset", lambda: phases.dataset(self, k))
        except EmptyDataset as exc:
            r["skipped"] = f"no training data: {exc.message}"
            r["wall_s"] = r.get("wall_s", 0.0) + time.monotonic() - started
            self._save()
            self.on_event("round", r)
            return
        self._phase(r, "train", lambda: phases.train(self, k, r))
        self._phase(r, "register", lambda: phases.register(self, k, r, parent), key="policy")
        gate, report = self.config.gate_split, self.config.report_split
        self._phase(r, "gate", lambda: self.evaluate(f"r{k}-gate", gate, r["policy"]))
        if report:
            self._phase(r, "report", lambda: self.evaluate(f"r{k}-report", report, r["policy"]))
        self._phase(r, "promote", lambda: phases.promote(self, r, parent))
        r["wall_s"] = r.get("wall_s", 0.0) + time.monotonic() - started
        self._save()
        self.on_event("round", r)

    def _phase(
        self, r: dict[str, Any], name: str, work: Callable[[], Any], key: str | None = None
    ) -> None:
        if name in r["done"]:
            return
        self.on_event("phase", {"round": r["round"], "phase": name})
        r[key or name] = work()
        r["done"].append(name)
        self._save()

    # --- evaluation through the engine ---------------------------------------------------

    def evaluate(
        self, label: str, split: str, policy: str | None, *, temperature: float | None = None
    ) -> dict[str, Any]:
        """One engine run of ``policy`` (None: the base) on ``split``; its pass rate, 95%
        interval and per-task results. The run resumes if the store has part of it."""
        run_id = f"{self.run_id}-{label}"
        model = self.resolve(self.config.model if policy is None else f"policy:{policy}")
        tasks = self.tasks[split]
        specs = {t.id: self._spec(model, t, temperature) for t in tasks}
        target = Target(
            model=model,
            suite=self.suite,
            sandbox=suite_sandbox_factory(self.suite, self.backend),
            specs=specs,
        )
        self.on_event("evaluate", {"label": label, "split": split, "n_tasks": len(tasks)})
        with TrajectoryStore() as store:
            store.create_run(
                run_id,
                {"suite": self.config.suite, "split": split, "model": model.name,
                 "improve": self.run_id, "purpose": label},
            )  # fmt: skip
            engine = Engine(
                store, LocalExecutor(self.config.workers), errors_log=self.run_dir / "errors.log"
            )
            evaluation = engine.evaluate(
                target,
                tasks,
                run_id=run_id,
                on_progress=lambda p: self.on_event("progress", {"label": label, "progress": p}),
            )
            per_task = {
                t.id: float(evaluation.states[t.id].passed_trial is not None) for t in tasks
            }
            passed = int(sum(per_task.values()))
            summary = {"n_tasks": len(tasks), "n_passed": passed, "pass_rate": passed / len(tasks)}
            store.finish_run(run_id, {**summary, "model": model.name}, evaluation.status)
        if evaluation.status == "failed":
            raise ImproveFailed(
                f"evaluation {run_id} failed: {evaluation.error}",
                hint=f"fix the cause, then: exapt improve --resume {self.run_id}",
            )
        if evaluation.status == "interrupted":
            raise KeyboardInterrupt
        return {
            "run_id": run_id,
            "model": model.name,
            "suite": self.suite.name,
            "split": split,
            "n_tasks": len(tasks),
            "passed": passed,
            "pass_rate": passed / len(tasks),
            "ci95": wilson(passed, len(tasks)),
            "per_task": per_task,
            "stopped": evaluation.status == "stopped",
        }

    def _spec(self, model: Model, task: Task, temperature: float | None) -> AgentSpec:
        from exapt.agents import default_spec_for, load_spec

        spec = load_spec(self.config.agent) if self.config.agent else default_spec_for(model, task)
        if temperature is None:
            return spec
        return spec.with_changes(graph_options={**spec.graph_options, "temperature": temperature})

    # --- state ------------------------------------------------------------------------

    def _current(self) -> str | None:
        promoted = PolicyRegistry().promoted(self.line)
        return promoted.name if promoted else None

    def _save(self) -> None:
        save_state(self.run_dir, self.state)


__all__ = [
    "IMPROVE_SCHEMA",
    "METHODS",
    "PHASES",
    "Improve",
    "ImproveConfig",
    "ImproveFailed",
    "base_checkpoint",
    "make_improve_config",
    "serve_model",
]
