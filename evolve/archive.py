"""``Archive``: every variant an evolution made, its lineage, scores and fate.

On disk, ``<home>/archive/<name>/``:

- ``archive.sqlite`` (WAL; schema in ``archive_schema.py``, versioned in ``PRAGMA user_version``):
  ``meta`` (the run's config, uid, task order, final report), ``entries`` (one per variant:
  parents, generation, slot, operator, status, stage reached, score, cost), ``scores`` (one
  per (variant, task): reward, passed, split, whether it was paid for or cached),
  ``attempts`` (one per (generation, slot): what the operator proposed and what came of it,
  including duplicates and proposals that never became a variant);
- ``variants/<variant_id>/``: each variant's file tree, written before its row (a
  temporary folder renamed into place), so every row has its folder.

Statuses: ``pending`` (made, not yet evaluated) -> ``evaluating`` -> ``accepted`` (passed
every stage: may be a parent) | ``rejected`` (stopped at a stage gate: kept for lineage,
never selected) | ``failed`` (did not load, crashed or hung; ``reason`` says which).

Every write is one SQLite transaction; nothing is rewritten in place except an entry's
status and its aggregates, which are recomputed from ``scores``.

Example:
    archive = Archive.create("demo", config={"suite": "humaneval"})
    archive.add(seed_entry, seed_variant)
    archive.record_score(result, split="select", fresh=True)
    archive.best()
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import sqlite3
import threading
import time
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from exapt import sqlite
from exapt.errors import ConfigError
from exapt.evolve import lineage
from exapt.evolve.archive_schema import ARCHIVE_SCHEMA as ARCHIVE_SCHEMA
from exapt.evolve.archive_schema import ensure_schema
from exapt.evolve.base import Candidate, TaskResult
from exapt.evolve.entries import STATUSES, ArchiveEntry, Attempt
from exapt.evolve.variant import Variant

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def check_name(name: str) -> str:
    if not NAME_RE.match(name):
        raise ConfigError(
            f"bad archive name {name!r}",
            hint="use letters, digits, '.', '_' and '-' (up to 100); start with a letter or digit",
        )
    return name


def archive_root(name: str) -> Path:
    from exapt.paths import archive_dir

    return archive_dir() / check_name(name)


def list_archives() -> list[str]:
    from exapt.paths import archive_dir

    return sorted(p.name for p in archive_dir().iterdir() if (p / "archive.sqlite").is_file())


class Archive:
    """One archive on disk (see the module docstring). Thread-safe; one writer process."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.name = root.name
        self.path = root / "archive.sqlite"
        self._lock = threading.RLock()
        self._variants: dict[str, Variant] = {}
        self._conn = sqlite.connect(self.path)
        try:
            sqlite.use_wal(self._conn)
            with self._tx() as conn:
                ensure_schema(conn, self.path)
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            raise ConfigError(f"{self.path} is not an exapt archive: {exc}") from exc

    # --- opening ---------------------------------------------------------------------

    @classmethod
    def create(cls, name: str, config: dict[str, Any]) -> Archive:
        """A new, empty archive; ``ConfigError`` if ``name`` exists (use ``--resume``)."""
        root = archive_root(name)
        if (root / "archive.sqlite").exists():
            raise ConfigError(
                f"archive {name!r} exists ({root})",
                hint="continue it with --resume, or pick another --archive name",
            )
        root.mkdir(parents=True, exist_ok=True)
        archive = cls(root)
        archive.set_meta("uid", f"{name}-{secrets.token_hex(4)}")
        archive.set_meta("config", config)
        archive.set_meta("created", time.time())
        return archive

    @classmethod
    def open(cls, name: str) -> Archive:
        """An existing archive; ``ConfigError`` listing the known ones if there is none."""
        root = archive_root(name)
        if not (root / "archive.sqlite").is_file():
            known = list_archives()
            raise ConfigError(
                f"no archive {name!r} in {root.parent}",
                hint=f"archives here: {', '.join(known)}" if known else "start one: exapt evolve",
            )
        return cls(root)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _tx(self) -> AbstractContextManager[sqlite3.Connection]:
        return sqlite.transaction(self._conn, self._lock)

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return sqlite.query(self._conn, self._lock, sql, params)

    # --- meta ------------------------------------------------------------------------

    def set_meta(self, key: str, value: Any) -> None:
        with self._tx() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value, default=str))
            )

    def meta(self, key: str, default: Any = None) -> Any:
        rows = self._query("SELECT value FROM meta WHERE key = ?", (key,))
        return json.loads(rows[0][0]) if rows else default

    @property
    def uid(self) -> str:
        return str(self.meta("uid"))

    @property
    def config(self) -> dict[str, Any]:
        return dict(self.meta("config") or {})

    # --- entries ---------------------------------------------------------------------

    def variant_dir(self, variant_id: str) -> Path:
        return self.root / "variants" / variant_id

    def add(self, entry: ArchiveEntry, variant: Variant) -> None:
        """Write the variant's folder (atomically), then its row. ``ConfigError`` if the id
        is already in the archive (the novelty filter comes first)."""
        if entry.variant_id != variant.id:
            raise ValueError(f"entry {entry.variant_id} is not variant {variant.id}")
        if self.has(variant.id):
            raise ConfigError(f"variant {variant.id} is already in archive {self.name!r}")
        variant.write(self.variant_dir(variant.id))
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (entry.variant_id, json.dumps(entry.parent_ids), entry.generation, entry.slot,
                 entry.operator, entry.status, entry.created, entry.updated,
                 entry.model_dump_json(by_alias=True)),
            )  # fmt: skip
        self._variants[variant.id] = variant

    def has(self, variant_id: str) -> bool:
        return bool(self._query("SELECT 1 FROM entries WHERE variant_id = ?", (variant_id,)))

    def entry(self, variant_id: str) -> ArchiveEntry:
        rows = self._query("SELECT data FROM entries WHERE variant_id = ?", (variant_id,))
        if not rows:
            raise ConfigError(
                f"no variant {variant_id!r} in archive {self.name!r}",
                hint=f"see them with `exapt archive show {self.name}`",
            )
        return ArchiveEntry.model_validate_json(rows[0][0])

    def entries(self) -> list[ArchiveEntry]:
        """Every entry, in the order they were made (generation, slot)."""
        rows = self._query("SELECT data FROM entries ORDER BY generation, slot, created")
        return [ArchiveEntry.model_validate_json(r[0]) for r in rows]

    def update(self, variant_id: str, **changes: Any) -> ArchiveEntry:
        """Set fields of an entry (status, reason, stage, metadata...) and recompute its
        aggregates from its scores, in one transaction."""
        with self._tx() as conn:
            row = conn.execute(
                "SELECT data FROM entries WHERE variant_id = ?", (variant_id,)
            ).fetchone()
            if row is None:
                raise KeyError(variant_id)
            entry = ArchiveEntry.model_validate_json(row[0])
            if "status" in changes and changes["status"] not in STATUSES:
                raise ValueError(f"unknown status {changes['status']!r}")
            entry = entry.model_copy(update={**changes, **self._aggregates(conn, variant_id)})
            entry.updated = time.time()
            conn.execute(
                "UPDATE entries SET status = ?, updated = ?, data = ? WHERE variant_id = ?",
                (entry.status, entry.updated, entry.model_dump_json(by_alias=True), variant_id),
            )
        return entry

    @staticmethod
    def _aggregates(conn: sqlite3.Connection, variant_id: str) -> dict[str, Any]:
        select = conn.execute(
            "SELECT COUNT(*), COALESCE(AVG(reward), 0) FROM scores "
            "WHERE variant_id = ? AND split = 'select'",
            (variant_id,),
        ).fetchone()
        spent = conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(cost_usd), 0), COALESCE(SUM(tokens), 0) FROM scores "
            "WHERE variant_id = ? AND fresh = 1",
            (variant_id,),
        ).fetchone()
        return {
            "n_scored": int(select[0]),
            "score": float(select[1]),
            "evaluations": int(spent[0]),
            "cost_usd": float(spent[1]),
            "tokens": int(spent[2]),
        }

    def variant(self, variant_id: str) -> Variant:
        """The variant's files, read from its folder (and checked against its id)."""
        if variant_id not in self._variants:
            variant = Variant.from_dir(self.variant_dir(variant_id))
            if variant.id != variant_id:
                raise ConfigError(
                    f"archive {self.name!r}: folder of {variant_id} holds variant {variant.id}",
                    hint="the folder was edited by hand; restore it or remove the entry",
                )
            self._variants[variant_id] = variant
        return self._variants[variant_id]

    # --- scores ----------------------------------------------------------------------

    def record_score(self, result: TaskResult, *, split: str, fresh: bool) -> None:
        """Store one task result of a variant (first write wins per (variant, task))."""
        with self._tx() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO scores VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (result.variant_id, result.task_id, split, result.reward, int(result.passed),
                 int(fresh), result.cost_usd if fresh else 0.0, result.tokens if fresh else 0,
                 result.error, result.finished, result.model_dump_json(by_alias=True)),
            )  # fmt: skip

    def scores(self, variant_id: str, split: str | None = None) -> dict[str, TaskResult]:
        sql = "SELECT task_id, data FROM scores WHERE variant_id = ?"
        params: tuple[Any, ...] = (variant_id,)
        if split is not None:
            sql += " AND split = ?"
            params = (variant_id, split)
        return {t: TaskResult.model_validate_json(d) for t, d in self._query(sql, params)}

    def all_scores(self) -> list[tuple[str, str, str, float, bool, float]]:
        """(variant_id, task_id, split, reward, fresh, finished) of every score, in time order."""
        rows = self._query(
            "SELECT variant_id, task_id, split, reward, fresh, finished FROM scores "
            "ORDER BY finished"
        )
        return [(v, t, s, float(r), bool(f), float(fin)) for v, t, s, r, f, fin in rows]

    def paid_timeline(self) -> list[tuple[float, float]]:
        """(finished, cost_usd) of every evaluation this archive paid for, in time order."""
        sql = "SELECT finished, cost_usd FROM scores WHERE fresh = 1 ORDER BY finished"
        rows = self._query(sql)
        return [(float(f), float(c)) for f, c in rows]

    def spend(self) -> dict[str, Any]:
        """What this archive paid for: ``evaluations`` run for the search (selection and
        feedback tasks; cache hits are ``cached``), ``test_evaluations`` (the held-out
        scoring), USD and tokens of all of them plus the mutator's calls."""
        evals = self._query(
            "SELECT COUNT(*), COALESCE(SUM(cost_usd), 0), COALESCE(SUM(tokens), 0), "
            "COALESCE(SUM(split = 'test'), 0) FROM scores WHERE fresh = 1"
        )[0]
        cached = self._query("SELECT COUNT(*) FROM scores WHERE fresh = 0")[0][0]
        mutation = self._query(
            "SELECT COALESCE(SUM(cost_usd), 0), COALESCE(SUM(tokens), 0) FROM attempts"
        )[0]
        return {
            "evaluations": int(evals[0]) - int(evals[3]),
            "test_evaluations": int(evals[3]),
            "cached": int(cached),
            "eval_cost_usd": float(evals[1]),
            "eval_tokens": int(evals[2]),
            "mutation_cost_usd": float(mutation[0]),
            "mutation_tokens": int(mutation[1]),
            "cost_usd": float(evals[1]) + float(mutation[0]),
            "tokens": int(evals[2]) + int(mutation[1]),
        }

    # --- attempts --------------------------------------------------------------------

    def record_attempt(self, attempt: Attempt) -> None:
        with self._tx() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO attempts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (attempt.generation, attempt.slot, attempt.parent_id, attempt.operator,
                 attempt.outcome, attempt.variant_id, attempt.reason, attempt.cost_usd,
                 attempt.tokens, attempt.created),
            )  # fmt: skip

    def attempts(self, generation: int | None = None) -> list[Attempt]:
        sql = (
            "SELECT generation, slot, parent_id, operator, outcome, variant_id, reason, "
            "cost_usd, tokens, created FROM attempts"
        )
        params: tuple[Any, ...] = ()
        if generation is not None:
            sql += " WHERE generation = ?"
            params = (generation,)
        rows = self._query(sql + " ORDER BY generation, slot", params)
        keys = list(Attempt.model_fields)
        return [Attempt(**dict(zip(keys, row, strict=True))) for row in rows]

    # --- views -----------------------------------------------------------------------

    def candidates(self) -> list[Candidate]:
        """Selectors' view (``lineage.candidates``)."""
        return lineage.candidates(self)

    def best(self) -> ArchiveEntry | None:
        """The best accepted entry (``lineage.best``)."""
        return lineage.best(self)

    def lineage(self, variant_id: str) -> list[str]:
        return lineage.first_parents(self, variant_id)

    def ancestors(self, variant_id: str) -> set[str]:
        return lineage.ancestors(self, variant_id)

    def remove_orphans(self) -> int:
        """Delete variant folders without a row (a crash between folder and row)."""
        folder = self.root / "variants"
        if not folder.is_dir():
            return 0
        removed = 0
        for path in folder.iterdir():
            if path.name.startswith(".") or not self.has(path.name):
                shutil.rmtree(path, ignore_errors=True)
                removed += 1
        return removed
