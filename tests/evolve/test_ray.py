"""Ray (a local cluster started in the test, 2 CPUs) and the local pool give identical
archives for the same run."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from exapt.evolve.archive import Archive

ray = pytest.importorskip(
    "ray", reason="the Ray executor needs the ray extra (pip install exapt[ray])"
)


def fingerprint(name: str) -> tuple[list[Any], list[Any], list[Any]]:
    with Archive.open(name) as archive:
        entries = [
            (e.variant_id, tuple(e.parent_ids), e.generation, e.slot, e.operator, e.status,
             e.stage, e.score, e.n_scored, e.reason)
            for e in archive.entries()
        ]  # fmt: skip
        scores = sorted((v, t, s, r) for v, t, s, r, _f, _t in archive.all_scores())
        attempts = [(a.generation, a.slot, a.parent_id, a.operator, a.outcome, a.variant_id)
                    for a in archive.attempts()]  # fmt: skip
    return entries, scores, attempts


def test_ray_and_local_give_identical_archives(
    evolve_run: Callable[..., Any], home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = {"generations": 2, "children": 2, "workers": 2,
              "operators": {"reflect_prompt": 1.0, "graph_options": 1.0, "merge": 1.0}}  # fmt: skip
    local, _ = evolve_run(archive="local", executor="local", **config)
    expected = fingerprint("local")
    # A second home, so the Ray run evaluates everything again instead of hitting the cache.
    other = home.parent / "home-ray"
    monkeypatch.setenv("EXAPT_HOME", str(other))
    remote, evolution = evolve_run(archive="ray", executor="ray", **config)
    assert evolution.evaluator.executor.name == "ray"
    assert remote["spend"]["cached"] == 0 and remote["spend"]["evaluations"] > 0
    assert not ray.is_initialized()  # the cluster the run started was shut down
    assert fingerprint("ray") == expected
    assert remote["spend"]["evaluations"] == local["spend"]["evaluations"]
    assert os.environ["EXAPT_HOME"] == str(other)
