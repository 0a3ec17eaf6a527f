"""``exapt evolve``: grow an archive of agent variants, with live progress.

The loop lives in ``exapt.evolve.loop.Evolution``; this module turns flags into an
``EvolveConfig``, draws progress on stderr (so ``--json`` keeps stdout clean) and maps the
run's end to an exit code: 0 done or stopped by a budget, 1 failed (model or sandbox
down: resumable), 130 interrupted, 2 bad input.
"""

from __future__ import annotations

import json
import signal
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from exapt.evolve.loop import Evolution

EXIT_CODES = {"done": 0, "stopped": 0, "failed": 1, "interrupted": 130}


def evolve(
    archive: Annotated[str, typer.Option(help="archive name (<home>/archive/NAME/)")],
    suite: Annotated[
        str | None, typer.Option(help="humaneval | polyglot:PATH | jsonl:PATH (not on --resume)")
    ] = None,
    seed: Annotated[
        str | None,
        typer.Option(
            help="seed agent: built-in name, spec YAML or variant folder "
            "(default: the best built-in for the model)"
        ),
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="model evaluated: local | litellm string | scripted:PATH")
    ] = None,
    api_base: Annotated[str | None, typer.Option(help="server URL for --model")] = None,
    mutator_model: Annotated[
        str | None, typer.Option(help="model that rewrites prompts (default: --model)")
    ] = None,
    mutator_api_base: Annotated[
        str | None, typer.Option(help="server URL for --mutator-model")
    ] = None,
    mutator_archive: Annotated[
        str | None,
        typer.Option(
            help="archive of improvers for self_modify, evolved by their children's gains"
        ),
    ] = None,
    operators: Annotated[
        list[str] | None,
        typer.Option(
            help="operators with weights, e.g. graph_options=2,add_exemplar "
            "(default: the LLM-free ones; add reflect_prompt for a mutator model)"
        ),
    ] = None,
    operator_choice: Annotated[
        str | None, typer.Option(help="weights | bandit (score gain per evaluation)")
    ] = None,
    selection: Annotated[
        str | None,
        typer.Option(help="score_child | metaproductivity | pareto | best | random"),
    ] = None,
    children: Annotated[int | None, typer.Option(help="children per generation (2)")] = None,
    generations: Annotated[int | None, typer.Option(help="generations to run (5)")] = None,
    select_split: Annotated[
        str | None, typer.Option(help="split selection scores on (dev; feedback uses train)")
    ] = None,
    select_limit: Annotated[
        int | None, typer.Option(help="use only the first N selection tasks")
    ] = None,
    test_limit: Annotated[int | None, typer.Option(help="score only N test tasks")] = None,
    feedback_tasks: Annotated[
        int | None, typer.Option(help="feedback (train) tasks a parent runs for mutation (4)")
    ] = None,
    harvest: Annotated[
        int | None, typer.Option(help="feedback tasks the seed runs at the start (exemplars)")
    ] = None,
    stages: Annotated[
        str | None, typer.Option(help="stage sizes: smoke, then growing, e.g. 1,10,50,all")
    ] = None,
    thresholds: Annotated[
        str | None, typer.Option(help="gate per stage: parent | parent+D | NUMBER (parent)")
    ] = None,
    min_solved: Annotated[
        int | None, typer.Option(help="tasks a child must pass at each gate too (0)")
    ] = None,
    parents: Annotated[
        str | None,
        typer.Option(help="accepted (default) | valid: rejected children may be parents too"),
    ] = None,
    rng_seed: Annotated[int | None, typer.Option(help="random seed (and cache seed) (0)")] = None,
    sandbox: Annotated[str | None, typer.Option(help="sandbox backend (default: best)")] = None,
    executor: Annotated[
        str | None, typer.Option(help="local | ray | ray:ADDRESS (default: local)")
    ] = None,
    workers: Annotated[int | None, typer.Option(help="parallel evaluations")] = None,
    budget_usd: Annotated[float | None, typer.Option(help="stop at this spend (USD)")] = None,
    max_tokens: Annotated[int | None, typer.Option(help="stop at this many tokens")] = None,
    max_hours: Annotated[float | None, typer.Option(help="stop after this wall time")] = None,
    max_evals: Annotated[
        int | None, typer.Option(help="stop after this many evaluations run")
    ] = None,
    job_timeout: Annotated[
        float | None, typer.Option(help="seconds before an attempt counts as hung (1800)")
    ] = None,
    finetune_every: Annotated[
        int | None,
        typer.Option(
            help="every N generations, a child on a LoRA policy trained on the "
            "archive's trusted passes (local models)"
        ),
    ] = None,
    finetune_method: Annotated[
        str | None, typer.Option(help="sft | rerest | dpo | kto (sft)")
    ] = None,
    novelty: Annotated[
        bool, typer.Option("--novelty/--no-novelty", help="embedding near-duplicate filter")
    ] = True,
    test: Annotated[
        bool, typer.Option("--test/--no-test", help="score best and seed on the test split")
    ] = True,
    resume: Annotated[
        bool, typer.Option("--resume", help="continue the archive with its saved config")
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help="print the summary as JSON")] = False,
) -> None:
    """Evolve agent variants on a suite: select, mutate, evaluate in stages, archive.

    Example: exapt evolve --suite humaneval --archive he1 --generations 5 --max-hours 1
    """
    from exapt.errors import ConfigError
    from exapt.evolve.choice import parse_weights
    from exapt.evolve.config import make_config
    from exapt.evolve.prepare import prepare
    from exapt.evolve.prepare import resume as resume_archive

    values: dict[str, Any] = {
        "suite": suite, "seed_agent": seed, "model": model, "api_base": api_base,
        "mutator_model": mutator_model, "mutator_api_base": mutator_api_base,
        "mutator_archive": mutator_archive,
        "operators": parse_weights(operators) if operators else None,
        "operator_choice": operator_choice, "selection": selection, "children": children,
        "generations": generations, "select_split": select_split,
        "select_limit": select_limit, "test_limit": test_limit,
        "feedback_tasks": feedback_tasks, "harvest": harvest, "stages": stages,
        "thresholds": thresholds, "min_solved": min_solved, "parents": parents,
        "seed": rng_seed,
        "sandbox": sandbox, "executor": executor,
        "workers": workers, "budget_usd": budget_usd, "max_tokens": max_tokens,
        "max_hours": max_hours, "max_evals": max_evals, "job_timeout_s": job_timeout,
        "finetune_every": finetune_every, "finetune_method": finetune_method,
    }  # fmt: skip
    err = _console(stderr=True)
    progress = _Progress(err)
    if resume:
        overrides = {k: v for k, v in values.items() if v is not None}
        if not test:
            overrides["final_test"] = False
        evolution = resume_archive(archive, overrides, on_progress=progress)
    else:
        if suite is None:
            raise ConfigError("--suite is required", hint="e.g. --suite humaneval")
        values["archive"] = archive
        values["final_test"] = test
        config = make_config(**values)
        if not novelty:
            config = config.model_copy(update={"embedder": None})
        evolution = prepare(config, on_progress=progress)
    _execute(evolution, progress, err, json_out)


def _execute(evolution: Evolution, progress: _Progress, err: Console, json_out: bool) -> None:
    from exapt.evolve.evaluator import EvaluationFailed
    from exapt.evolve.prepare import close

    c = evolution.config
    err.print(
        f"evolving archive [bold]{c.archive}[/]: {c.suite}, model {c.model}, "
        f"{len(evolution.order)} selection tasks ({c.select_split}), stages {c.stages}, "
        f"selection {c.selection}, operators {', '.join(sorted(c.operators))}, "
        f"{evolution.evaluator.executor.name} executor x{evolution.evaluator.executor.workers}",
        highlight=False,
    )
    previous = signal.signal(signal.SIGTERM, _interrupt)
    failure: str | None = None
    try:
        with progress:
            summary = evolution.run()
    except EvaluationFailed as exc:
        failure = str(exc)
        summary = evolution.summary()
    except KeyboardInterrupt:
        summary = evolution.summary()
    finally:
        signal.signal(signal.SIGTERM, previous)
        close(evolution)
    if json_out:
        sys.stdout.write(json.dumps(summary, indent=2, default=str) + "\n")
    _epilogue(summary, err, failure)
    code = EXIT_CODES.get(summary["status"], 1)
    if code:
        raise typer.Exit(code)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


class _Progress:
    """A live status line on stderr: generation, archive size, best, evaluations, spend."""

    def __init__(self, err: Console) -> None:
        from rich.progress import BarColumn, Progress, TextColumn

        self.bar = Progress(
            TextColumn("[bold]generation {task.completed:.0f}/{task.total:.0f}"),
            BarColumn(),
            TextColumn("{task.fields[stats]}"),
            console=err,
            transient=False,
        )
        self.handle: Any = None

    def __enter__(self) -> _Progress:
        self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()

    def __call__(self, p: Any) -> None:
        stats = (
            f"archive {p.archive_size}  best {p.best_score:.3f}  evals {p.evaluations} "
            f"(+{p.cached} cached)  {p.tokens:,} tok  ${p.cost_usd:.4f}  {_clock(p.elapsed_s)}"
        )
        if self.handle is None:
            self.handle = self.bar.add_task("evolve", total=max(1, p.generations), stats=stats)
        self.bar.update(self.handle, completed=p.generation, stats=stats)


def _epilogue(summary: dict[str, Any], err: Console, failure: str | None) -> None:
    best = summary.get("best") or {}
    spend = summary["spend"]
    err.print(
        f"{summary['status']}: {summary['entries']} variants "
        f"({', '.join(f'{n} {s}' for s, n in sorted(summary['by_status'].items()))}), "
        f"best {best.get('variant_id', '-')} score {best.get('score', 0.0):.3f}, "
        f"{spend['evaluations']} evaluations (+{spend['cached']} cached), "
        f"${spend['cost_usd']:.4f}, {_clock(summary['wall_s'])}",
        highlight=False,
    )
    final = summary.get("final") or {}
    comparison = final.get("comparison")
    if comparison:
        lo, hi = comparison["ci95"]
        err.print(
            f"held-out {final['split']} ({comparison['n_tasks']} tasks): best "
            f"{comparison['mean_b']:.3f} vs seed {comparison['mean_a']:.3f}, diff "
            f"{comparison['diff']:+.3f} [95% {lo:+.3f}, {hi:+.3f}]: {comparison['verdict']}",
            highlight=False,
        )
    if summary.get("stop_detail") and summary["status"] == "stopped":
        err.print(f"[yellow]stopped:[/] {summary['stop_detail']}", highlight=False)
    if failure:
        err.print(f"[bold red]error:[/] {failure}", highlight=False)
    if summary["status"] != "done":
        err.print(
            f"[yellow]hint:[/] continue with: exapt evolve --archive {summary['archive']} "
            "--resume [a larger budget]",
            highlight=False,
        )


def _console(stderr: bool = False) -> Console:
    from exapt.commands.runs import make_console

    return make_console(stderr=stderr)


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"
