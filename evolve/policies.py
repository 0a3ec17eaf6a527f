"""``PolicyRegistry``: writes the policies under ``<home>/policies/`` that ``policy:NAME`` serves
(the record and the reader live in ``exapt.agents.models.policy``, so agents can read them
without importing evolve).

- ``register`` adds a policy as a ``candidate``: its adapter is checked (a peft LoRA trained on
  the policy's base, a rank the engine can serve), copied with its ``policy.json`` into a
  hidden temp folder and renamed into place — a crash or a bad adapter leaves nothing behind.
- ``promote`` makes a policy its line's promoted one, gated on the held-out evaluation: its
  ``metrics_after[metric]`` must not be worse than its parent's ``metrics_before[metric]`` on
  the same tasks by more than ``min_gain`` allows (``min_gain=0``: not worse; ``> 0``: better by
  that much); ``force`` skips the gate. The line's previous promoted policy is retired.
- ``rollback`` retires a line's promoted policy and promotes its parent again (or leaves the
  line on its base model when the parent is the base).

Every status change is appended to the policy's ``history``. Writes are atomic
(write-then-rename) and serialised by a lock file, so two processes never interleave a
promotion; a crash between the two records of a promotion (new promoted, old not yet retired)
is repaired by the next promote or rollback of the line (the newest promotion wins).

Example:
    registry = PolicyRegistry()
    registry.register(name="he-r1", line="he", adapter_dir=result.adapter_dir, ...)
    registry.promote("he-r1")              # PromotionRefused if worse than its parent
    registry.rollback("he")                # back to he-r1's parent
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from exapt.agents.models.policy import (
    Policy,
    check_adapter,
    check_policy_name,
    config_sha,
    list_policies,
    load_policy,
    policies_root,
)
from exapt.errors import ConfigError
from exapt.paths import atomic_write

#: The metric promotion compares, unless told otherwise: pass rate on the held-out split.
GATE_METRIC = "pass_rate"


class PromotionRefused(ConfigError):
    """A policy's held-out evaluation is worse than its parent's (or missing)."""


class PolicyRegistry:
    """The policies of one home folder (see the module docstring)."""

    def __init__(self) -> None:
        self.root = policies_root()

    # --- reading ----------------------------------------------------------------------

    def get(self, name: str) -> Policy:
        return load_policy(name)

    def list(self, line: str | None = None) -> list[Policy]:
        return [p for p in list_policies() if line is None or p.line == line]

    def promoted(self, line: str) -> Policy | None:
        found = [p for p in self.list(line) if p.status == "promoted"]
        return max(found, key=_promoted_at) if found else None

    # --- writing ----------------------------------------------------------------------

    def register(
        self,
        *,
        name: str,
        line: str,
        adapter_dir: Path | str,
        base_model: str,
        base_checkpoint: Path | str,
        method: str,
        dataset_hash: str,
        parent: str | None = None,
        dataset_path: Path | str | None = None,
        hyperparameters: dict[str, Any] | None = None,
        training: dict[str, Any] | None = None,
        metrics_before: dict[str, Any] | None = None,
        metrics_after: dict[str, Any] | None = None,
        is_base: bool = True,
        max_rank: int | None = None,
    ) -> Policy:
        """Add policy ``name`` as a candidate of ``line`` (module docstring). ``max_rank``:
        the largest LoRA rank the serving engine takes (e.g. vLLM's ``--max-lora-rank``).

        Raises ``ConfigError`` — and writes nothing — for a bad or taken name, an unknown
        parent or one on another base, a folder that is not a peft adapter, an adapter trained
        on another base, or a rank over ``max_rank``.
        """
        check_policy_name(name)
        check_policy_name(line, "line name")
        base_checkpoint = Path(base_checkpoint).expanduser().resolve()
        source = Path(adapter_dir)
        with self._lock():
            if (self.root / name).exists():
                raise ConfigError(f"a policy named {name!r} exists", hint="pick another name")
            others = self.list()
            if any(p.line == name for p in others):
                raise ConfigError(f"{name!r} is a line's name; a policy needs another name")
            if any(p.name == line and p.line != line for p in others):
                raise ConfigError(f"{line!r} is a policy's name; a line needs another name")
            if parent is not None:
                parent_policy = load_policy(parent)
                if parent_policy.base_model != base_model:
                    raise ConfigError(
                        f"parent {parent!r} is a policy of {parent_policy.base_model}, not of "
                        f"{base_model}"
                    )
            adapter_config = _read_adapter_config(source)
            rank = int(adapter_config.get("r") or 0)
            if max_rank is not None and rank > max_rank:
                raise ConfigError(
                    f"adapter {source} has LoRA rank {rank}; the serving engine takes at most "
                    f"{max_rank}",
                    hint="train with a smaller --lora-r, or start the engine with a larger "
                    "--max-lora-rank",
                )
            policy = Policy(
                name=name,
                line=line,
                parent=parent,
                base_model=base_model,
                base_checkpoint=str(base_checkpoint),
                base_config_sha=config_sha(base_checkpoint),
                is_base=is_base,
                lora_rank=rank,
                method=method,
                dataset_hash=dataset_hash,
                dataset_path=str(dataset_path) if dataset_path is not None else None,
                hyperparameters=hyperparameters or {},
                training=training or {},
                metrics_before=metrics_before or {},
                metrics_after=metrics_after or {},
                created=time.time(),
                history=[_event("candidate", "registered")],
            )
            tmp = Path(tempfile.mkdtemp(dir=self.root, prefix=f".{name}."))
            try:
                shutil.copytree(source, tmp / policy.adapter)
                check_adapter(policy, tmp / policy.adapter)
                (tmp / "policy.json").write_text(_dump(policy))
                tmp.rename(self.root / name)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        return load_policy(name)

    def update_metrics(self, name: str, **metrics: dict[str, Any]) -> Policy:
        """Set ``metrics_before`` / ``metrics_after`` (e.g. once the held-out run is done)."""
        with self._lock():
            policy = load_policy(name)
            changed = policy.model_copy(update={k: v for k, v in metrics.items()})
            self._write(changed)
        return changed

    def promote(
        self,
        name: str,
        *,
        min_gain: float = 0.0,
        metric: str = GATE_METRIC,
        force: bool = False,
        reason: str = "",
    ) -> Policy:
        """Make ``name`` its line's promoted policy, if its held-out ``metric`` is at least its
        parent's + ``min_gain`` (``force``: without the gate). Raises ``PromotionRefused``
        naming both figures; changes nothing then."""
        with self._lock():
            policy = load_policy(name)
            verdict = gate(policy, min_gain=min_gain, metric=metric)
            if verdict is not None and not force:
                raise PromotionRefused(
                    f"policy {name!r} is not promoted: {verdict}",
                    hint="promote anyway with --force, or lower --min-gain",
                )
            why = reason or (f"forced: {verdict}" if verdict else "passed the held-out gate")
            self._promote(policy, why)
            return load_policy(name)

    def rollback(self, reference: str) -> Policy | None:
        """Retire the promoted policy of ``reference`` (a line, or a policy of it) and promote
        its parent again; return the line's promoted policy now (None: the base model)."""
        with self._lock():
            line = self._line_of(reference)
            current = self.promoted(line)
            if current is None:
                raise ConfigError(f"line {line!r} has no promoted policy to roll back")
            self._set(current, "retired", "rolled back")
            if current.parent is None:
                return None
            parent = load_policy(current.parent)
            self._promote(parent, f"rollback of {current.name}")
            return load_policy(parent.name)

    def retire(self, name: str, reason: str = "retired by hand") -> Policy:
        with self._lock():
            policy = load_policy(name)
            self._set(policy, "retired", reason)
            return load_policy(name)

    # --- internals --------------------------------------------------------------------

    def _promote(self, policy: Policy, reason: str) -> None:
        # New first, then the others: a crash in between leaves two promoted, and the
        # newest promotion is the one `promoted()` and `policy:LINE` pick.
        if policy.status != "promoted":
            self._set(policy, "promoted", reason)
        for other in self.list(policy.line):
            if other.name != policy.name and other.status == "promoted":
                self._set(other, "retired", f"replaced by {policy.name}")

    def _set(self, policy: Policy, status: str, reason: str) -> None:
        history = [*policy.history, _event(status, reason)]
        self._write(policy.model_copy(update={"status": status, "history": history}))

    def _write(self, policy: Policy) -> None:
        atomic_write(self.root / policy.name / "policy.json", _dump(policy))

    def _line_of(self, reference: str) -> str:
        check_policy_name(reference)
        if (self.root / reference / "policy.json").is_file():
            return load_policy(reference).line
        if any(p.line == reference for p in self.list()):
            return reference
        raise ConfigError(f"no policy or line {reference!r}", hint="see `exapt policy list`")

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield


def gate(policy: Policy, *, min_gain: float = 0.0, metric: str = GATE_METRIC) -> str | None:
    """Why ``policy`` may not be promoted (None: it may): its held-out ``metric`` must be at
    least its parent's + ``min_gain``, measured on the same tasks."""
    after, before = policy.metrics_after, policy.metrics_before
    if metric not in after:
        return f"no held-out {metric} measured for it"
    if metric not in before:
        return f"no held-out {metric} measured for its parent ({policy.parent or 'the base'})"
    for key in ("split", "n_tasks", "suite"):
        if key in after and key in before and after[key] != before[key]:
            return (
                "it and its parent were evaluated on different tasks "
                f"({key}: {before[key]} vs {after[key]})"
            )
    delta = float(after[metric]) - float(before[metric])
    if delta < min_gain:
        return (
            f"held-out {metric} {float(after[metric]):.3f} vs {float(before[metric]):.3f} for "
            f"{policy.parent or 'the base'} (gain {delta:+.3f} < required {min_gain:+.3f})"
        )
    return None


def _read_adapter_config(folder: Path) -> dict[str, Any]:
    try:
        config = json.loads((folder / "adapter_config.json").read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"{folder} is not a peft adapter folder (adapter_config.json: {exc})",
            hint="give the folder train_adapter wrote (<run>/adapter)",
        ) from exc
    if config.get("peft_type") != "LORA":
        raise ConfigError(f"{folder}: a {config.get('peft_type')} adapter, not a LoRA")
    if not any((folder / f).is_file() for f in ("adapter_model.safetensors", "adapter_model.bin")):
        raise ConfigError(f"{folder}: no adapter weights (adapter_model.safetensors)")
    return dict(config)


def _event(status: str, reason: str) -> dict[str, Any]:
    return {"status": status, "at": time.time(), "reason": reason}


def _promoted_at(policy: Policy) -> float:
    times = [e["at"] for e in policy.history if e.get("status") == "promoted"]
    return max(times) if times else policy.created


def _dump(policy: Policy) -> str:
    return json.dumps(policy.model_dump(mode="json", by_alias=True), indent=2) + "\n"
