"""Evolution with the embedded ``local`` model and the LLM-free operators on HumanEval:
does the best variant beat the seed on held-out tasks, how many evaluations do staging and
caching save, and how many evaluations an hour does the loop run?

One run, side by side:

- **held-out pass@1**: the best accepted variant (selected on the dev split; mutated from
  the train split's feedback and exemplars) against the seed (the built-in ``completion``
  agent), both scored on the test split, with the paired bootstrap 95% interval;
- **evaluations saved** by staged evaluation + caching + the novelty filter, against the
  naive loop that scores every proposed child (duplicates included) and the seed on every
  selection task (target: >= 50% saved);
- **evaluations per hour** of the search (selection and feedback tasks).

Budget: ``--hours`` in all (default 1): the search stops at 75% of it (``max_hours``), the
rest is for the held-out scoring of the best and the seed.

Run: ``python bench/evolve.py`` (about an hour on 2 cores), or a smoke run:
``python bench/evolve.py --hours 0.2 --select-limit 6 --test-limit 6``. A fresh home is
used (a temporary folder unless ``--home``), so the cache starts empty.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine_info, write_result

OPERATORS = {"graph_options": 2.0, "add_exemplar": 2.0, "prune_exemplar": 0.5, "merge": 1.0}


def local_engine() -> str:
    """Which engine serves ``local`` in this checkout (the figures depend on it)."""
    import exapt.agents.models.local as local

    source = Path(local.__file__).read_text()
    return "llama.cpp" if "llama" in source.lower() else "transformers (exapt's own server)"


def run(args: argparse.Namespace) -> dict[str, Any]:
    from exapt.evolve.archive import Archive
    from exapt.evolve.config import make_config
    from exapt.evolve.prepare import close, prepare

    console = Console()
    config = make_config(
        suite="humaneval",
        archive=args.archive,
        model="local",
        seed_agent="completion",
        operators=OPERATORS,
        selection=args.selection,
        children=args.children,
        generations=args.generations,
        select_split="dev",
        feedback_split="train",
        test_split="test",
        select_limit=args.select_limit,
        test_limit=args.test_limit,
        harvest=args.harvest,
        stages=args.stages,
        thresholds=args.thresholds,
        min_solved=args.min_solved,
        workers=args.workers,
        max_hours=args.hours * 0.75,
        job_timeout_s=900,
    )
    last = [0.0]

    def progress(p: Any) -> None:
        if time.monotonic() - last[0] > 60:
            last[0] = time.monotonic()
            console.print(
                f"[dim]generation {p.generation}: archive {p.archive_size}, best "
                f"{p.best_score:.3f}, {p.evaluations} evals (+{p.cached} cached), "
                f"{p.elapsed_s / 60:.1f} min[/]"
            )

    started = time.monotonic()
    evolution = prepare(config, on_progress=progress)
    try:
        summary = evolution.run()
    finally:
        close(evolution)
    wall = time.monotonic() - started
    with Archive.open(args.archive) as archive:
        return figures(archive, summary, wall, len(evolution.order))


def figures(archive: Any, summary: dict[str, Any], wall: float, n_select: int) -> dict[str, Any]:
    entries = archive.entries()
    attempts = archive.attempts()
    made = [a for a in attempts if a.outcome in ("child", "duplicate", "near-duplicate")]
    children = [e for e in entries if e.generation > 0]
    fresh_select = sum(
        1 for v, _t, split, _r, fresh, _f in archive.all_scores() if fresh and split == "select"
    )
    naive = (1 + len(made)) * n_select  # every proposal and the seed on every selection task
    naive_novel = (1 + len(children)) * n_select  # the same, duplicates left out
    spend = summary["spend"]
    search_s = float(archive.meta("search_wall_s", 0.0)) or summary["wall_s"]
    final = summary.get("final") or {}
    comparison = final.get("comparison") or {}
    return {
        "status": summary["status"],
        "stop_detail": summary["stop_detail"],
        "generations": summary["generations_done"],
        "variants": len(entries),
        "by_status": summary["by_status"],
        "proposals": len(attempts),
        "duplicates": sum(a.outcome in ("duplicate", "near-duplicate") for a in attempts),
        "selection_tasks": n_select,
        "test_tasks": final.get("n_tasks"),
        "seed": final.get("seed"),
        "best": final.get("best"),
        "best_operator": (summary.get("best") or {}).get("operator"),
        "best_description": (summary.get("best") or {}).get("description"),
        "best_dev_score": (summary.get("best") or {}).get("score"),
        "seed_test_pass_at_1": comparison.get("mean_a"),
        "best_test_pass_at_1": comparison.get("mean_b"),
        "test_diff": comparison.get("diff"),
        "test_diff_ci95": comparison.get("ci95"),
        "test_verdict": comparison.get("verdict"),
        "selection_evaluations_run": fresh_select,
        "naive_selection_evaluations": naive,
        "saved_fraction": 1 - fresh_select / naive if naive else None,
        "saved_fraction_vs_novel_children": 1 - fresh_select / naive_novel if naive_novel else None,
        "search_evaluations": spend["evaluations"],
        "test_evaluations": spend["test_evaluations"],
        "cached_hits": spend["cached"],
        "tokens": spend["tokens"],
        "wall_s": round(wall, 1),
        "search_wall_s": round(search_s, 1),
        "evaluations_per_hour": round(spend["evaluations"] / (search_s / 3600), 1)
        if search_s
        else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="evolve on HumanEval with the local model")
    parser.add_argument("--hours", type=float, default=1.0, help="whole budget (search: 75%%)")
    parser.add_argument("--generations", type=int, default=100, help="upper bound")
    parser.add_argument("--children", type=int, default=2)
    parser.add_argument("--stages", default="1,8,all")
    parser.add_argument("--selection", default="score_child")
    parser.add_argument("--thresholds", default="parent")
    parser.add_argument("--min-solved", type=int, default=1, help="passes a gate needs")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--harvest", type=int, default=40, help="train tasks the seed runs")
    parser.add_argument("--select-limit", type=int, default=None)
    parser.add_argument("--test-limit", type=int, default=None)
    parser.add_argument("--home", default=None, help="EXAPT_HOME (default: a fresh temp dir)")
    parser.add_argument("--archive", default="bench-evolve")
    args = parser.parse_args()

    home = args.home or tempfile.mkdtemp(prefix="exapt-bench-evolve-")
    Path(home).mkdir(parents=True, exist_ok=True)
    os.environ["EXAPT_HOME"] = home
    models = Path(os.environ.get("EXAPT_BENCH_MODELS", Path(".exapt/models").resolve()))
    if models.is_dir() and not (Path(home) / "models").exists():
        (Path(home) / "models").symlink_to(models)  # reuse the converted local model
    machine_before = machine_info()
    result = run(args)
    machine_after = machine_info()

    table = Table(title="evolve on HumanEval, local model, LLM-free operators")
    table.add_column("measure")
    table.add_column("ours")
    table.add_column("baseline")
    table.add_column("target")
    ci = result["test_diff_ci95"] or [None, None]
    table.add_row(
        f"held-out pass@1 ({result['test_tasks']} test tasks)",
        f"best {result['best_test_pass_at_1']}",
        f"seed {result['seed_test_pass_at_1']}",
        f"diff {result['test_diff']} [95% {ci[0]}, {ci[1]}]: {result['test_verdict']}",
    )
    saved = result["saved_fraction"]
    table.add_row(
        "selection evaluations",
        str(result["selection_evaluations_run"]),
        f"{result['naive_selection_evaluations']} (every child on every task)",
        f"saved {saved:.1%} (>= 50%: {'met' if saved and saved >= 0.5 else 'MISSED'})"
        if saved is not None
        else "-",
    )
    table.add_row("evaluations per hour (search)", str(result["evaluations_per_hour"]), "-", "-")
    in_time = "met" if result["wall_s"] <= args.hours * 3600 else "MISSED"
    table.add_row(
        "wall time",
        f"{result['wall_s'] / 60:.1f} min",
        "-",
        f"<= {args.hours * 60:.0f} min: {in_time}",
    )
    Console().print(table)
    path = write_result(
        "evolve",
        {
            "benchmark": "evolve",
            "what": __doc__.split("\n\n")[0],
            "local_engine": local_engine(),
            "config": {k: v for k, v in vars(args).items() if k != "home"},
            "operators": OPERATORS,
            "results": result,
            "machine": machine_after,
            "load_avg_before": machine_before["load_avg"],
        },
    )
    print(f"saved {path}")


if __name__ == "__main__":
    main()
