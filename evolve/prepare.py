"""``prepare``: resolve an evolution run from its config — suite, splits, seed variant,
selector, operators, model, sandbox, executor, cache, store — and raise ``ConfigError``
for bad input *before* the archive is created. ``resume`` reopens an archive with its
saved config (only the fields in ``config.RESUMABLE`` may change).

Example:
    evolution = prepare(make_config(suite="jsonl:t.jsonl", archive="demo", model="local"))
    try:
        summary = evolution.run()
    finally:
        close(evolution)
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from exapt.errors import ConfigError, UnavailableError
from exapt.evolve.archive import Archive, archive_root, check_name
from exapt.evolve.cache import EvalCache
from exapt.evolve.config import RESUMABLE, EvolveConfig
from exapt.evolve.evaluator import EngineEvaluator
from exapt.evolve.executors import make_executor
from exapt.evolve.jobs import resolve, suite
from exapt.evolve.loop import Evolution, EvolveProgress
from exapt.evolve.operators import make_operator
from exapt.evolve.selection import make_selector
from exapt.evolve.staged import StagePlan
from exapt.evolve.variant import Variant
from exapt.records import Task

#: Default parallel evaluations: the local server batches 4 well on 2-4 cores; hosted
#: providers take 8; a scripted model answers at once.
DEFAULT_WORKERS = {"local": 4, "scripted": 2, "remote": 8}


def prepare(
    config: EvolveConfig, *, on_progress: Callable[[EvolveProgress], None] | None = None
) -> Evolution:
    """A new ``Evolution`` ready to ``run``; ``ConfigError`` if the archive exists."""
    check_name(config.archive)
    if (archive_root(config.archive) / "archive.sqlite").exists():
        raise ConfigError(
            f"archive {config.archive!r} exists",
            hint="continue it with --resume, or pick another --archive name",
        )
    return _build(config, None, [], on_progress)


def resume(
    name: str,
    overrides: dict[str, Any] | None = None,
    *,
    on_progress: Callable[[EvolveProgress], None] | None = None,
) -> Evolution:
    """The evolution of archive ``name`` with its saved config; ``overrides`` may change
    only the fields in ``RESUMABLE`` (``ConfigError`` for any other)."""
    archive = Archive.open(name)
    extra = sorted(k for k, v in (overrides or {}).items() if v is not None and k not in RESUMABLE)
    if extra:
        archive.close()
        raise ConfigError(
            f"--resume keeps the run's saved config; cannot change {', '.join(extra)}",
            hint=f"with --resume only these may change: {', '.join(RESUMABLE)}",
        )
    try:
        saved = EvolveConfig(**archive.config)
        changes = {k: v for k, v in (overrides or {}).items() if v is not None}
        config = EvolveConfig(**{**saved.model_dump(by_alias=True), **changes})
    except (ValueError, TypeError) as exc:
        archive.close()
        raise ConfigError(f"archive {name!r}: bad saved or resumed config: {exc}") from exc
    archive.set_meta("config", config.model_dump(mode="json", by_alias=True))
    return _build(config, archive, list(archive.meta("order") or []), on_progress)


def _build(
    config: EvolveConfig,
    archive: Archive | None,
    order_ids: list[str],
    on_progress: Callable[[EvolveProgress], None] | None,
) -> Evolution:
    the_suite = suite(config.suite)
    all_tasks = list(the_suite.tasks())
    select = _split(all_tasks, config.select_split, config.select_limit, config)
    feedback = _split(all_tasks, config.feedback_split, None, config)
    test = _split(all_tasks, config.test_split, config.test_limit, config)
    if not order_ids:
        order_ids = [t.id for t in select]
        random.Random(f"{config.seed}:order").shuffle(order_ids)
    by_id = {t.id: t for t in all_tasks}
    missing = [i for i in order_ids if i not in by_id]
    if missing:
        raise ConfigError(
            f"archive {config.archive!r} was made with tasks the suite lacks now: {missing[:3]}",
            hint="resume with the same suite file",
        )
    order = [by_id[i] for i in order_ids]
    StagePlan.parse(config.stages, config.thresholds)
    selector = make_selector(config.selection)
    operators = {
        name: make_operator(name, **_options(name, config)) for name in sorted(config.operators)
    }
    finetune = None
    if config.finetune_every:  # before the archive exists: a model that cannot train is refused
        from exapt.evolve.finetune import FinetuneOperator

        finetune = FinetuneOperator(
            archive=config.archive, model=config.model, feedback_split=config.feedback_split,
            method=config.finetune_method,
        )  # fmt: skip
    seed_variant = _seed_variant(config, archive)
    backend = _backend(config.sandbox)
    model_kind = _model_kind(config.model)
    workers = config.workers or DEFAULT_WORKERS[model_kind]
    executor = make_executor(config.executor, workers=workers, timeout_s=config.job_timeout_s)
    if archive is None:
        archive = Archive.create(config.archive, config.model_dump(mode="json", by_alias=True))
        archive.set_meta("order", order_ids)
    evaluator = EngineEvaluator(
        config.suite,
        model=config.model,
        api_base=config.api_base,
        seed=config.seed,
        executor=executor,
        cache=EvalCache(),
        store=_store(),
        origin=archive.uid,
        backend=backend,
        log=archive.root / "jobs.log",
    )
    mutator_name = config.mutator_model or config.model
    mutator_base = config.mutator_api_base if config.mutator_model else config.api_base
    evolution = Evolution(
        config,
        archive,
        evaluator,
        seed_variant=seed_variant,
        order=order,
        feedback=feedback,
        test=test,
        selector=selector,
        operators=operators,
        mutator=lambda: resolve(mutator_name, mutator_base),
        on_progress=on_progress,
    )
    evolution.finetune = finetune
    return evolution


def _options(operator: str, config: EvolveConfig) -> dict[str, Any]:
    if operator == "self_modify":
        if config.mutator_archive is not None:
            check_name(config.mutator_archive)
            if config.mutator_archive == config.archive:
                raise ConfigError("--mutator-archive must name another archive than --archive")
        return {"mutator_archive": config.mutator_archive}
    if config.mutator_archive is not None and "self_modify" not in config.operators:
        raise ConfigError(
            "--mutator-archive is for the self_modify operator",
            hint="add it: --operators self_modify (with any others)",
        )
    return {}


def close(evolution: Evolution) -> None:
    """Release what ``prepare`` opened (the executor — a local Ray cluster stops — the
    cache, the store, the archive, what operators hold)."""
    for operator in evolution.operators.values():
        if hasattr(operator, "close"):
            operator.close()
    evaluator = evolution.evaluator
    evaluator.executor.close()
    evaluator.cache.close()
    evaluator.store.close()
    evolution.archive.close()


def _split(tasks: list[Task], split: str, limit: int | None, config: EvolveConfig) -> list[Task]:
    from exapt.tasks import split_tasks

    chosen = split_tasks(tasks, split)
    if limit is not None:
        chosen = chosen[:limit]
    if not chosen and split == config.select_split:
        raise ConfigError(
            f"suite {config.suite!r} has no tasks in the selection split {split!r}",
            hint="a suite needs tasks in the train, dev and test splits (60/20/20 by id hash)",
        )
    return chosen


def _seed_variant(config: EvolveConfig, archive: Archive | None) -> Variant:
    if archive is not None and archive.meta("seed_id"):
        return archive.variant(str(archive.meta("seed_id")))
    if config.seed_agent:
        variant = Variant.from_source(config.seed_agent)
    else:
        from exapt.agents import default_spec_for

        variant = Variant.from_spec(default_spec_for(resolve(config.model, config.api_base)))
    variant.load_spec()  # ConfigError now, before anything is written
    return variant


def _backend(name: str | None) -> str:
    from exapt.sandbox import available_backends, default_backend

    if name is None:
        return str(default_backend())
    available = available_backends()
    if name not in available:
        raise ConfigError(
            f"unknown sandbox backend {name!r}", hint=f"use one of: {', '.join(available)}"
        )
    if available[name] is not None:
        raise UnavailableError(f"sandbox backend {name!r} is not usable here: {available[name]}")
    return name


def _model_kind(name: str) -> str:
    if name == "local" or name.startswith("local:"):
        return "local"
    return "scripted" if name.startswith("scripted:") else "remote"


def _store() -> Any:
    from exapt.memory.trajectories import TrajectoryStore

    return TrajectoryStore()
