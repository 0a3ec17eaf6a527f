"""A built dataset's identity and record: ``BuiltDataset`` (the rows, their datasheet, where
saved), ``content_hash`` (format + rows), ``datasheet`` (what went in, what was dropped and
why, token lengths), and ``save_dataset`` / ``load_saved`` under ``<home>/datasets/<hash>/``
(``data/`` in ``datasets``' own format, and ``datasheet.json``), written atomically.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import statistics
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from exapt import paths
from exapt.errors import ConfigError
from exapt.evolve.training.config import DatasetConfig
from exapt.evolve.training.filters import Tally

if TYPE_CHECKING:
    import datasets

DATASHEET_SCHEMA = 1


@dataclass
class BuiltDataset:
    """A dataset, its datasheet, and where it was saved (None until ``save_dataset``)."""

    dataset: datasets.Dataset
    datasheet: dict[str, Any]
    path: Path | None = None

    @property
    def hash(self) -> str:
        return str(self.datasheet["hash"])

    @property
    def format(self) -> str:
        return str(self.datasheet["format"])

    def __len__(self) -> int:
        return len(self.dataset)


def content_hash(format: str, rows: list[dict[str, Any]]) -> str:
    """The dataset's identity: a hash of its format and rows (16 hex digits)."""
    h = hashlib.sha256(format.encode())
    for row in rows:
        h.update(json.dumps(row, sort_keys=True, ensure_ascii=False, default=str).encode())
        h.update(b"\n")
    return h.hexdigest()[:16]


def datasheet(
    config: DatasetConfig,
    kind: str,
    rows: list[dict[str, Any]],
    tally: Tally,
    digest: str,
    tokenizer: Any,
    dataset: Any,
) -> dict[str, Any]:
    """The datasheet of ``rows`` (built from ``config``, hashed to ``digest``); token lengths
    too with a ``tokenizer``."""
    sheet: dict[str, Any] = {
        "schema": DATASHEET_SCHEMA,
        "hash": digest,
        "format": config.format,
        "kind": kind,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "config": config.model_dump(mode="json"),
        "rows": len(rows),
        "tasks": len({r["task_id"] for r in rows}),
        "trajectories": len({r["trajectory_id"] for r in rows}),
        "by_split": dict(Counter(r["split"] for r in rows)),
        "by_source": dict(Counter(r["source"] for r in rows)),
        "counts": dict(sorted(tally.counts.items())),
        "splits_skipped": dict(tally.splits_skipped),
        "sources": {
            "runs": sorted(tally.runs),
            "models": sorted(tally.models),
            "variant_ids": sorted(tally.variants),
        },
    }
    if config.format == "kto":
        sheet["by_label"] = {
            "desirable": sum(r["label"] for r in rows),
            "undesirable": sum(not r["label"] for r in rows),
        }
    if tokenizer is not None:
        from exapt.evolve.training.lengths import token_lengths

        lengths = token_lengths(dataset, tokenizer)
        sheet["tokens"] = length_summary(lengths)
    return sheet


def length_summary(lengths: list[int]) -> dict[str, Any]:
    if not lengths:
        return {"min": 0, "median": 0, "max": 0, "total": 0}
    return {
        "min": min(lengths),
        "median": statistics.median(lengths),
        "max": max(lengths),
        "total": sum(lengths),
    }


# --- saving and loading ------------------------------------------------------------------


def datasets_dir() -> Path:
    return paths.subdir("datasets")


def save_dataset(built: BuiltDataset, root: Path | None = None) -> Path:
    """Write ``built`` to ``<root>/<hash>/`` (``data/`` in ``datasets``' own format, and
    ``datasheet.json``), atomically; a dataset already saved there is reused. Returns the
    folder, also set on ``built.path``."""
    root = Path(root) if root is not None else datasets_dir()
    target = root / built.hash
    if (target / "datasheet.json").is_file():
        built.path = target
        return target
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".{built.hash}."))
    try:
        built.dataset.save_to_disk(str(tmp / "data"))
        (tmp / "datasheet.json").write_text(json.dumps(built.datasheet, indent=2) + "\n")
        try:
            os.replace(tmp, target)
        except OSError:  # someone saved the same content meanwhile
            if not (target / "datasheet.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    built.path = target
    return target


def load_saved(path: Path | str) -> BuiltDataset:
    """A dataset saved by ``save_dataset`` (its folder). ``ConfigError`` when it is not one."""
    import datasets

    folder = Path(path)
    sheet_path = folder / "datasheet.json"
    try:
        sheet = json.loads(sheet_path.read_text())
        dataset = datasets.load_from_disk(str(folder / "data"))
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"{folder} is not a saved exapt dataset: {exc}",
            hint="build one with exapt.evolve.training.build_dataset / save_dataset",
        ) from exc
    if not isinstance(sheet, dict) or "hash" not in sheet or "format" not in sheet:
        raise ConfigError(f"{sheet_path}: not an exapt datasheet (no hash/format)")
    return BuiltDataset(dataset=dataset, datasheet=sheet, path=folder)
