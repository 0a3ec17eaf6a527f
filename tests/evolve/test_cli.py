"""The commands: `exapt variant`, `exapt evolve`, `exapt archive`, `exapt report` — and
bad input, which exits 2 with a message naming it and changes nothing."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from exapt.cli import app
from exapt.evolve.variant import Variant

from .helpers import exapt_process


@pytest.fixture
def cli(home: Path) -> Callable[..., Any]:
    runner = CliRunner()

    def invoke(*args: str) -> Any:
        return runner.invoke(app, list(args), catch_exceptions=True)

    return invoke


def process(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    proc = exapt_process(*args, home=home)
    out, err = proc.communicate(timeout=600)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_variant_export_writes_a_folder_that_loads(cli: Callable[..., Any], tmp_path: Path) -> None:
    result = cli("variant", "export", "completion", str(tmp_path / "v"), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["files"] == ["prompts/completion.md.j2", "spec.yaml"]
    assert Variant.from_dir(tmp_path / "v").id == data["variant_id"]
    assert cli("variant", "id", str(tmp_path / "v")).stdout.strip() == data["variant_id"]
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("keep me")
    refused = cli("variant", "export", "completion", str(tmp_path / "busy"))
    assert refused.exit_code != 0 and (tmp_path / "busy" / "x").read_text() == "keep me"


def test_evolve_archive_report_end_to_end(
    home: Path, files: dict[str, Path], bwrap: str, tmp_path: Path
) -> None:
    run = process(
        home, "evolve", "--archive", "e2e", "--suite", f"jsonl:{files['tasks']}",
        "--seed", "tool_coder", "--model", f"scripted:{files['agent']}",
        "--mutator-model", f"scripted:{files['mutator']}", "--operators", "reflect_prompt",
        "--generations", "1", "--children", "2", "--stages", "1,all", "--sandbox", bwrap,
        "--no-novelty", "--json",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    summary = json.loads(run.stdout)
    assert summary["status"] == "done" and summary["best"]["score"] == 1.0
    assert "held-out test" in run.stderr and "generation 1/1" in run.stderr

    listed = json.loads(process(home, "archive", "list", "--json").stdout)
    assert [a["name"] for a in listed] == ["e2e"] and listed[0]["status"] == "done"
    shown = json.loads(process(home, "archive", "show", "e2e", "--json").stdout)
    assert len(shown["entries"]) == summary["entries"] and shown["final"]["comparison"]
    best = process(home, "archive", "best", "e2e", "--export", str(tmp_path / "best"), "--json")
    data = json.loads(best.stdout)
    assert (
        Variant.from_dir(tmp_path / "best").id
        == data["variant_id"]
        == summary["best"]["variant_id"]
    )
    table = process(home, "archive", "show", "e2e")
    assert data["variant_id"] in table.stdout
    report = process(home, "report", "e2e")
    assert report.returncode == 0 and Path(report.stdout.strip()).is_file()
    # The exported best is an agent `exapt run` takes as it is.
    rerun = process(
        home, "run", "--suite", f"jsonl:{files['tasks']}", "--task", "demo/t12",
        "--agent", str(tmp_path / "best" / "spec.yaml"), "--model", f"scripted:{files['agent']}",
        "--sandbox", bwrap, "--no-memory", "--json",
    )  # fmt: skip
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert json.loads(rerun.stdout)["n_passed"] == 1


NEW = ["evolve", "--archive", "x", "--suite", "SUITE"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["archive", "show", "nope"], "no archive 'nope'"),
        (["archive", "best", "bad/name"], "bad archive name"),
        (["report", "nope"], "no archive 'nope'"),
        (["evolve", "--archive", "x"], "--suite is required"),
        ([*NEW, "--stages", "10,1"], "--stages must grow"),
        ([*NEW, "--thresholds", "maybe"], "bad rule"),
        ([*NEW, "--selection", "magic"], "unknown selection policy"),
        ([*NEW, "--operators", "telepathy"], "unknown mutation operator"),
        ([*NEW, "--select-split", "train"], "three different splits"),
        ([*NEW, "--executor", "slurm"], "unknown executor"),
        ([*NEW, "--seed", "no_such_agent"], "no agent spec"),
        (["evolve", "--archive", "x", "--resume"], "no archive 'x'"),
    ],
)  # fmt: skip
def test_bad_input_exits_2_naming_it(
    home: Path, files: dict[str, Path], args: list[str], message: str
) -> None:
    args = [a.replace("SUITE", f"jsonl:{files['tasks']}") for a in args]
    if args[0] == "evolve" and "--model" not in args:
        args += ["--model", f"scripted:{files['agent']}"]
    result = process(home, *args)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert not (home / "archive" / "x").exists()  # nothing was created


def test_resume_keeps_the_saved_config(evolve_run: Callable[..., Any], home: Path) -> None:
    evolve_run(generations=1, children=1)
    result = process(home, "evolve", "--archive", "t", "--resume", "--model", "local")
    assert result.returncode == 2 and "cannot change model" in result.stderr
    again = process(home, "evolve", "--archive", "t", "--suite", "humaneval")
    assert again.returncode == 2 and "exists" in again.stderr and "--resume" in again.stderr
