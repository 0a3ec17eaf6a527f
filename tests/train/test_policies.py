"""The policy registry: register (checked, atomic), promotion gated on the held-out evaluation,
rollback, the `policy:NAME` / `policy:LINE` references, and `exapt policy` on the command line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from exapt.agents.models.policy import check_adapter, find_policy, load_policy, policy_model
from exapt.errors import ConfigError
from exapt.evolve.policies import PolicyRegistry, PromotionRefused, gate


def _metrics(rate: float, n: int = 10) -> dict[str, Any]:
    return {"pass_rate": rate, "split": "dev", "n_tasks": n, "suite": "toy"}


def _register(registry: PolicyRegistry, name: str, adapter: Path, base: Path, **extra: Any) -> Any:
    values: dict[str, Any] = {
        "line": "toy",
        "base_model": f"local:{base}",
        "base_checkpoint": base,
        "method": "sft",
        "dataset_hash": "0123456789abcdef",
        "metrics_before": _metrics(0.2),
        "metrics_after": _metrics(0.3),
        **extra,
    }
    return registry.register(name=name, adapter_dir=adapter, **values)


def _leftovers(home: Path) -> list[str]:
    return sorted(p.name for p in (home / "policies").iterdir() if p.name != ".lock")


def test_register_copies_the_adapter_and_writes_the_record(
    home: Path, tiny_adapter: Path, tiny: Path
) -> None:
    registry = PolicyRegistry()
    policy = _register(registry, "toy-r1", tiny_adapter, tiny, hyperparameters={"lora_r": 16})
    assert policy.status == "candidate" and policy.lora_rank == 16
    assert (home / "policies" / "toy-r1" / "adapter" / "adapter_model.safetensors").is_file()
    record = json.loads((home / "policies" / "toy-r1" / "policy.json").read_text())
    assert record["schema"] == 1 and record["base_checkpoint"] == str(tiny.resolve())
    assert record["history"][0]["status"] == "candidate"
    assert find_policy("toy-r1") == load_policy("toy-r1") == policy
    check_adapter(policy)  # the copy still belongs to its base
    with pytest.raises(ConfigError, match="a policy named 'toy-r1' exists"):
        _register(registry, "toy-r1", tiny_adapter, tiny)
    assert _leftovers(home) == ["toy-r1"]


def test_bad_adapters_are_refused_and_leave_nothing(
    home: Path, tiny_adapter: Path, tiny: Path, tiny_long: Path, tmp_path: Path
) -> None:
    registry = PolicyRegistry()
    with pytest.raises(ConfigError, match=r"trained on .* not on the policy's base"):
        _register(registry, "wrong-base", tiny_adapter, tiny_long)
    with pytest.raises(ConfigError, match="LoRA rank 16; the serving engine takes at most 8"):
        _register(registry, "too-wide", tiny_adapter, tiny, max_rank=8)
    with pytest.raises(ConfigError, match="not a peft adapter folder"):
        _register(registry, "no-adapter", tmp_path, tiny)
    with pytest.raises(ConfigError, match="bad policy name"):
        _register(registry, "../escape", tiny_adapter, tiny)
    with pytest.raises(ConfigError, match="no policy 'ghost'"):
        _register(registry, "orphan", tiny_adapter, tiny, parent="ghost")
    assert _leftovers(home) == []  # no policy, no half-copied temp folder
    assert registry.list() == []


def test_a_changed_base_is_caught_before_serving(
    home: Path, tiny_adapter: Path, tiny: Path, tmp_path: Path
) -> None:
    base = tmp_path / "base"
    shutil.copytree(tiny, base)
    adapter = tmp_path / "adapter"
    shutil.copytree(tiny_adapter, adapter)
    config = json.loads((adapter / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = str(base)
    (adapter / "adapter_config.json").write_text(json.dumps(config))
    policy = _register(PolicyRegistry(), "toy-r1", adapter, base)
    changed = json.loads((base / "config.json").read_text())
    changed["num_hidden_layers"] = 3
    (base / "config.json").write_text(json.dumps(changed))
    with pytest.raises(ConfigError, match="is not the one it was trained on"):
        check_adapter(policy)
    with pytest.raises(ConfigError, match="is not the one it was trained on"):
        policy_model("toy-r1")


def test_promotion_is_gated_on_the_held_out_evaluation(
    home: Path, tiny_adapter: Path, tiny: Path
) -> None:
    registry = PolicyRegistry()
    worse = _register(registry, "toy-r1", tiny_adapter, tiny, metrics_after=_metrics(0.1))
    assert gate(worse) is not None
    with pytest.raises(PromotionRefused, match=r"held-out pass_rate 0.100 vs 0.200"):
        registry.promote("toy-r1")
    assert load_policy("toy-r1").status == "candidate"  # refused: nothing changed
    tie = _register(registry, "toy-r2", tiny_adapter, tiny, metrics_after=_metrics(0.2))
    assert gate(tie) is None  # not worse is enough by default
    with pytest.raises(PromotionRefused, match="gain"):
        registry.promote("toy-r2", min_gain=0.05)
    other = _register(registry, "toy-r3", tiny_adapter, tiny, metrics_after=_metrics(0.5, n=20))
    with pytest.raises(PromotionRefused, match="different tasks"):
        registry.promote("toy-r3")
    assert gate(_register(registry, "toy-r4", tiny_adapter, tiny, metrics_after={})) is not None
    forced = registry.promote("toy-r1", force=True)
    assert forced.status == "promoted" and "forced" in forced.history[-1]["reason"]
    assert other.status == "candidate"


def test_promote_replaces_the_lines_policy_and_rollback_restores_it(
    home: Path, tiny_adapter: Path, tiny: Path
) -> None:
    registry = PolicyRegistry()
    _register(registry, "toy-r1", tiny_adapter, tiny)
    registry.promote("toy-r1")
    assert find_policy("toy").name == "toy-r1"  # policy:LINE is the promoted one
    _register(registry, "toy-r2", tiny_adapter, tiny, parent="toy-r1")
    registry.promote("toy-r2")
    assert load_policy("toy-r1").status == "retired"
    assert find_policy("toy").name == "toy-r2"
    back = registry.rollback("toy")
    assert back is not None and back.name == "toy-r1" and back.status == "promoted"
    assert load_policy("toy-r2").status == "retired"
    assert [e["status"] for e in load_policy("toy-r1").history] == [
        "candidate", "promoted", "retired", "promoted",
    ]  # fmt: skip
    assert registry.rollback("toy-r1") is None  # its parent is the base model
    with pytest.raises(ConfigError, match="has no promoted policy"):
        find_policy("toy")
    with pytest.raises(ConfigError, match="no promoted policy to roll back"):
        registry.rollback("toy")


def test_policy_references_that_do_not_resolve(home: Path) -> None:
    from exapt.agents.models import resolve_model

    with pytest.raises(ConfigError, match="no policy or line 'nothing'"):
        resolve_model("policy:nothing")
    with pytest.raises(ConfigError, match="bad policy name"):
        resolve_model("policy:a/b")
    with pytest.raises(ConfigError, match="does not apply"):
        resolve_model("policy:x", api_base="http://127.0.0.1:1/v1")


def test_the_policy_command(home: Path, tiny_adapter: Path, tiny: Path) -> None:
    from exapt.cli import app

    registry = PolicyRegistry()
    _register(registry, "toy-r1", tiny_adapter, tiny, metrics_after=_metrics(0.1))
    runner = CliRunner()
    listed = runner.invoke(app, ["policy", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.stdout)
    assert [(r["name"], r["status"], r["heldout_after"]) for r in rows] == [
        ("toy-r1", "candidate", 0.1)
    ]
    shown = runner.invoke(app, ["policy", "show", "toy-r1", "--json"])
    assert json.loads(shown.stdout)["dataset_hash"] == "0123456789abcdef"
    refused = runner.invoke(app, ["policy", "promote", "toy-r1"])
    assert refused.exit_code != 0 and isinstance(refused.exception, PromotionRefused)
    forced = runner.invoke(app, ["policy", "promote", "toy-r1", "--force", "--json"])
    assert forced.exit_code == 0 and json.loads(forced.stdout)["status"] == "promoted"
    table = runner.invoke(app, ["policy", "list"])
    assert "toy-r1" in table.stdout and "promoted" in table.stdout
    back = runner.invoke(app, ["policy", "rollback", "toy", "--json"])
    assert back.exit_code == 0 and json.loads(back.stdout) == {"promoted": None}
