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

Example:
    loop = Improve.prepare(ImproveConfig(suite="humaneval", rounds=2, samples=4))
    state = loop.run()
    state["rounds"][-1]["report"]["pass_rate"]
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from exapt.agents.models.base import Model
from exapt.agents.spec import AgentSpec
from exapt.engine import Engine, LocalExecutor, Target
from exapt.engine.config import new_run_id
from exapt.engine.resolve import check_backend, resolve_model_name, select_tasks
from exapt.errors import ConfigError, ExaptError
from exapt.evolve.policies import PolicyRegistry, PromotionRefused
from exapt.evolve.stats import paired_bootstrap
from exapt.evolve.training.datasets import DatasetConfig, EmptyDataset, build_dataset, save_dataset
from exapt.evolve.training.intervals import wilson
from exapt.evolve.training.train import TrainConfig, train_adapter
from exapt.memory.trajectories import TrajectoryStore
from exapt.paths import atomic_write, runs_dir
from exapt.records import Task
from exapt.tasks import Suite, load_suite, suite_sandbox_factory

IMPROVE_SCHEMA = 1
#: method -> (dataset format, Re-ReST repairs, trainer)
METHODS: dict[str, tuple[str, bool, str]] = {
    "sft": ("sft", False, "sft"),
    "rerest": ("sft", True, "sft"),
    "dpo": ("dpo", True, "dpo"),
    "kto": ("kto", False, "kto"),
}
PHASES = ("collect", "dataset", "train", "register", "gate", "report", "promote")

Event = Callable[[str, dict[str, Any]], None]


class ImproveFailed(ExaptError):
    """An evaluation of the loop failed (a model server down...); resume continues it."""


class ImproveConfig(BaseModel):
    """What ``exapt improve`` was asked for; saved in ``improve.json``."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    schema_version: int = Field(IMPROVE_SCHEMA, alias="schema")
    suite: str
    model: str = Field("local", description="the base: local | local:PATH (a checkpoint)")
    rounds: int = Field(2, ge=1)
    samples: int = Field(4, ge=1, description="attempts per train task per round")
    method: Literal["sft", "rerest", "dpo", "kto"] = "sft"
    temperature: float = Field(0.8, gt=0, le=2.0, description="of the collection attempts")
    train_split: Literal["train", "dev"] = "train"
    gate_split: Literal["train", "dev", "test"] = "dev"
    report_split: Literal["dev", "test"] | None = "test"
    limit: int | None = Field(None, gt=0, description="first N tasks of each split")
    workers: int = Field(4, ge=1)
    agent: str | None = Field(None, description="spec YAML or built-in; None: the default")
    sandbox: str | None = None
    line: str | None = Field(None, description="the policies' line (default: the run id)")
    min_gain: float = Field(0.0, description="held-out gain a policy needs to be promoted")
    accumulate: bool = Field(True, description="train on every round's collection so far")
    best_of: int = Field(4, ge=1)
    max_per_task: int = Field(8, ge=1)
    training: TrainConfig = Field(default_factory=TrainConfig)

    @model_validator(mode="after")
    def _held_out(self) -> ImproveConfig:
        if self.gate_split == self.train_split:
            raise ValueError(f"gate split {self.gate_split!r} is the train split")
        if self.report_split in (self.train_split, self.gate_split):
            raise ValueError(f"report split {self.report_split!r} is also trained or gated on")
        return self


def make_improve_config(**values: Any) -> ImproveConfig:
    """An ``ImproveConfig`` from CLI values; a bad value is a ``ConfigError`` naming it."""
    try:
        return ImproveConfig(**values)
    except ValidationError as exc:
        problems = "; ".join(
            f"--{'.'.join(str(p) for p in e['loc']).replace('_', '-')}: {e['msg']}"
            for e in exc.errors()
        )
        raise ConfigError(f"bad improve option: {problems}") from exc


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
        saved = loop._load_state()
        if saved is None and PolicyRegistry().list(loop.line):
            raise ConfigError(
                f"line {loop.line!r} already has policies (from another run)",
                hint="pick another --line, or continue that run with --resume",
            )
        loop.state = saved or loop._new_state()
        return loop

    @classmethod
    def resume(cls, run_id: str, **options: Any) -> Improve:
        """The improve run ``run_id`` from its ``improve.json``; ``ConfigError`` if none."""
        path = runs_dir() / run_id / "improve.json"
        try:
            saved = json.loads(path.read_text())
            config = ImproveConfig.model_validate(saved["config"])
        except (OSError, ValueError, KeyError, ValidationError) as exc:
            raise ConfigError(
                f"no improve run {run_id!r} to resume ({path}: {exc})",
                hint="see the runs with `exapt runs list`",
            ) from exc
        return cls.prepare(config, run_id=run_id, **options)

    @property
    def run_dir(self) -> Path:
        return runs_dir() / self.run_id

    @property
    def line(self) -> str:
        return self.config.line or self.run_id

    # --- the loop ---------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        """Run (or resume) every round; return the state (also in ``improve.json``)."""
        with self._exclusive():
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
            base["gate"] = self._evaluate("r0-gate", self.config.gate_split, None)
            self._save()
        if self.config.report_split and "report" not in base:
            base["report"] = self._evaluate("r0-report", self.config.report_split, None)
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
        self._phase(r, "collect", lambda: self._collect(k, parent))
        try:
            self._phase(r, "dataset", lambda: self._dataset(k))
        except EmptyDataset as exc:
            r["skipped"] = f"no training data: {exc.message}"
            r["wall_s"] = r.get("wall_s", 0.0) + time.monotonic() - started
            self._save()
            self.on_event("round", r)
            return
        self._phase(r, "train", lambda: self._train(k, r))
        self._phase(r, "register", lambda: self._register(k, r, parent), key="policy")
        gate, report = self.config.gate_split, self.config.report_split
        self._phase(r, "gate", lambda: self._evaluate(f"r{k}-gate", gate, r["policy"]))
        if report:
            self._phase(r, "report", lambda: self._evaluate(f"r{k}-report", report, r["policy"]))
        self._phase(r, "promote", lambda: self._promote(r, parent))
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

    # --- phases -----------------------------------------------------------------------

    def _collect(self, k: int, parent: str | None) -> dict[str, Any]:
        runs: list[str] = []
        per_task: dict[str, list[float]] = {}
        attempts = passed = 0
        for s in range(self.config.samples):
            result = self._evaluate(
                f"r{k}-c{s}", self.config.train_split, parent, temperature=self.config.temperature
            )
            runs.append(result["run_id"])
            for task, value in result["per_task"].items():
                per_task.setdefault(task, []).append(value)
            attempts += result["n_tasks"]
            passed += result["passed"]
        return {
            "runs": runs,
            "split": self.config.train_split,
            "attempts": attempts,
            "passed": passed,
            "pass_rate": passed / attempts if attempts else 0.0,
            "ci95": wilson(passed, attempts),
            "tasks_solved": sum(any(v) for v in per_task.values()),
            "n_tasks": len(per_task),
        }

    def _dataset(self, k: int) -> dict[str, Any]:
        fmt, repairs, _ = METHODS[self.config.method]
        rounds = (
            self.state["rounds"][:k] if self.config.accumulate else [self.state["rounds"][k - 1]]
        )
        runs = [run for r in rounds if "collect" in r for run in r["collect"]["runs"]]
        config = DatasetConfig(
            format=fmt,  # type: ignore[arg-type]
            repairs=repairs,
            splits=[self.config.train_split],
            runs=runs,
            best_of=self.config.best_of,
            max_per_task=self.config.max_per_task,
        )
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(self.base_checkpoint)
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

    def _train(self, k: int, r: dict[str, Any]) -> dict[str, Any]:
        from exapt.evolve.training.datasets import load_saved

        built = load_saved(r["dataset"]["path"])
        _, _, method = METHODS[self.config.method]
        config = self.config.training.model_copy(update={"method": method})
        out = self.run_dir / f"round-{k}" / "train"

        def notify(entry: dict[str, Any]) -> None:
            self.on_event("train", {"round": k, **entry})

        result = train_adapter(
            built, self.base_checkpoint, out, config, resume=True, progress=notify
        )
        return {**result.metrics, "adapter_dir": str(result.adapter_dir)}

    def _register(self, k: int, r: dict[str, Any], parent: str | None) -> str:
        name = f"{self.line}-r{k}"
        registry = PolicyRegistry()
        if (registry.root / name / "policy.json").is_file():  # registered before a crash
            return name
        training = {key: v for key, v in r["train"].items() if key != "adapter_dir"}
        registry.register(
            name=name,
            line=self.line,
            parent=parent,
            adapter_dir=Path(r["train"]["adapter_dir"]),
            base_model=self.config.model,
            base_checkpoint=self.base_checkpoint,
            method=self.config.method,
            dataset_hash=r["dataset"]["hash"],
            dataset_path=r["dataset"]["path"],
            hyperparameters=self.config.training.model_dump(mode="json"),
            training=training,
            metrics_before=_summary(self._gate_of(parent)),
            is_base=bool(getattr(self.resolve(self.config.model), "is_base", True)),
        )
        return name

    def _promote(self, r: dict[str, Any], parent: str | None) -> dict[str, Any]:
        registry = PolicyRegistry()
        registry.update_metrics(r["policy"], metrics_after=_summary(r["gate"]))
        verdict: dict[str, Any] = {"policy": r["policy"]}
        before = self._gate_of(parent)
        verdict["gate_paired"] = paired_bootstrap(before["per_task"], r["gate"]["per_task"])
        if self.config.report_split:
            report_before = self._report_of(parent)
            verdict["report_paired"] = paired_bootstrap(
                report_before["per_task"], r["report"]["per_task"]
            )
        try:
            registry.promote(r["policy"], min_gain=self.config.min_gain)
            verdict["promoted"] = True
        except PromotionRefused as exc:
            verdict["promoted"] = False
            verdict["reason"] = exc.message
        return verdict

    # --- evaluation through the engine ---------------------------------------------------

    def _evaluate(
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

    def _gate_of(self, policy: str | None) -> dict[str, Any]:
        if policy is None:
            return dict(self.state["base"]["gate"])
        return dict(self._round_of(policy)["gate"])

    def _report_of(self, policy: str | None) -> dict[str, Any]:
        if policy is None:
            return dict(self.state["base"]["report"])
        return dict(self._round_of(policy)["report"])

    def _round_of(self, policy: str) -> dict[str, Any]:
        for r in self.state["rounds"]:
            if r.get("policy") == policy:
                return dict(r)
        raise ConfigError(f"policy {policy!r} is not one of improve run {self.run_id}'s")

    def _new_state(self) -> dict[str, Any]:
        return {
            "schema": IMPROVE_SCHEMA,
            "run_id": self.run_id,
            "line": self.line,
            "config": self.config.model_dump(mode="json", by_alias=True),
            "base_checkpoint": str(self.base_checkpoint),
            "splits": {s: len(t) for s, t in self.tasks.items()},
            "status": "new",
            "created": time.time(),
            "base": {},
            "rounds": [],
        }

    def _load_state(self) -> dict[str, Any] | None:
        path = self.run_dir / "improve.json"
        if not path.is_file():
            return None
        try:
            state: dict[str, Any] = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{path}: not a readable improve state: {exc}") from exc
        if state.get("schema", 0) > IMPROVE_SCHEMA:
            raise ConfigError(f"{path} was written by a newer exapt", hint="upgrade exapt")
        return state

    def _save(self) -> None:
        atomic_write(self.run_dir / "improve.json", json.dumps(self.state, indent=2) + "\n")

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with open(self.run_dir / ".lock", "w") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                raise ConfigError(
                    f"improve run {self.run_id} is running in another process",
                    hint="wait for it, or stop it before resuming",
                ) from exc
            yield


def serve_model(name: str) -> Model:
    """The model a loop evaluates: ``policy:NAME`` as resolved everywhere; the base on vLLM
    too when policies are served by vLLM (``EXAPT_POLICY_ENGINE``), else as resolved."""
    from exapt.agents.models.policy import policy_engine

    local = resolve_model_name(name, None)  # starts nothing
    if name.startswith("policy:") or policy_engine() != "vllm":
        return local
    from exapt.agents.models.vllm import VLLMEngine

    model: Model = VLLMEngine.shared(base_checkpoint(name)).model(None, is_base=local.is_base)
    model.name = name
    return model


def base_checkpoint(model: str) -> Path:
    """The transformers checkpoint a LoRA over ``model`` trains on: the converted Gemma for
    ``local`` (converted once), PATH for ``local:PATH``. Other models cannot be trained here."""
    if model == "local":
        try:
            from exapt.agents.models.gemma import ensure_gemma_checkpoint  # the llama engine's
        except ImportError:
            from exapt.agents.models.local import ensure_gemma_checkpoint
        return Path(ensure_gemma_checkpoint())
    if model.startswith("local:") and "+adapter:" not in model:
        path = Path(model.partition(":")[2]).expanduser().resolve()
        if (path / "config.json").is_file():
            return path
        raise ConfigError(
            f"--model {model}: {path} is not a transformers checkpoint (no config.json); "
            "LoRA training needs one",
            hint="give the folder written by save_pretrained (a .gguf file cannot be trained)",
        )
    raise ConfigError(
        f"--model {model!r}: exapt improve trains LoRA adapters over a local base model",
        hint="use --model local or --model local:PATH (a transformers checkpoint)",
    )


def _summary(evaluation: dict[str, Any]) -> dict[str, Any]:
    """An evaluation without its per-task results (what a policy record keeps)."""
    return {k: v for k, v in evaluation.items() if k != "per_task"}
