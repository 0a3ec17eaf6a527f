"""``render_report``: an archive as one self-contained HTML page (no CDN, no network).

The page (``report.html.j2``, inline CSS/JS/SVG) shows the lineage tree (colour = score,
size = stage reached; click a node for its diff against its parent and its scores), best
and median score over generations, spend over time and operator success rates.

Everything in the page that an archive holds (prompts, diffs, reasons) is untrusted text:
it travels as JSON in a ``<script type="application/json">`` block with ``<``, ``>`` and
``&`` escaped, and the script puts it in the page with ``textContent`` only.

Example:
    path = write_report(Archive.open("demo"))  # <home>/archive/demo/report.html
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any

import jinja2

from exapt.evolve.archive import Archive

TEMPLATE = Path(__file__).resolve().parent / "report.html.j2"


def report_data(archive: Archive) -> dict[str, Any]:
    """What the page shows, as plain JSON-ready data."""
    entries = archive.entries()
    nodes = []
    for e in entries:
        parent = archive.variant(e.parent_id) if e.parent_id and archive.has(e.parent_id) else None
        select = archive.scores(e.variant_id, "select")
        test = archive.scores(e.variant_id, "test")
        nodes.append(
            {
                "id": e.variant_id,
                "parents": e.parent_ids,
                "generation": e.generation,
                "slot": e.slot,
                "operator": e.operator,
                "description": e.description,
                "status": e.status,
                "reason": e.reason,
                "stage": e.stage,
                "score": e.score,
                "n_scored": e.n_scored,
                "evaluations": e.evaluations,
                "cost_usd": e.cost_usd + e.mutation_cost_usd,
                "diff": archive.variant(e.variant_id).diff(parent) if parent else "(the seed)",
                "scores": {t: r.reward for t, r in sorted(select.items())},
                "test": {t: r.reward for t, r in sorted(test.items())},
                "errors": {t: r.error for t, r in select.items() if r.error},
            }
        )
    config = archive.config
    return {
        "name": archive.name,
        "config": config,
        "stage_sizes": config.get("stages", ""),
        "nodes": nodes,
        "generations": _generations(entries),
        "spend": _spend(archive),
        "operators": _operators(archive),
        "final": archive.meta("final"),
        "run": archive.meta("run"),
        "generated": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def _generations(entries: list[Any]) -> list[dict[str, Any]]:
    rows = []
    best = None
    for g in range(max((e.generation for e in entries), default=-1) + 1):
        accepted = [e.score for e in entries if e.generation == g and e.status == "accepted"]
        scored = [e.score for e in entries if e.generation == g and e.n_scored and
                  e.status != "failed"]  # fmt: skip
        if accepted:
            best = max(accepted + ([best] if best is not None else []))
        rows.append(
            {
                "generation": g,
                "best": best,
                "median": statistics.median(scored) if scored else None,
                "children": sum(e.generation == g for e in entries),
            }
        )
    return rows


def _spend(archive: Archive) -> list[dict[str, float]]:
    """Cumulative evaluations run and USD over time (only what this archive paid for)."""
    points: list[dict[str, float]] = []
    rows = archive.paid_timeline()
    if not rows:
        return points
    start = float(rows[0][0])
    cost = 0.0
    for evals, (finished, usd) in enumerate(rows, start=1):
        cost += float(usd)
        points.append({"t": float(finished) - start, "evaluations": evals, "cost_usd": cost})
    return points


def _operators(archive: Archive) -> list[dict[str, Any]]:
    """Per operator: proposals, new children, accepted, improved on their parent."""
    stats: dict[str, dict[str, Any]] = {}
    for a in archive.attempts():
        row = stats.setdefault(
            a.operator,
            {"operator": a.operator, "proposals": 0, "children": 0, "accepted": 0,
             "improved": 0, "duplicates": 0, "no_proposal": 0, "failed": 0},
        )  # fmt: skip
        row["proposals"] += 1
        if a.outcome in ("duplicate", "near-duplicate"):
            row["duplicates"] += 1
        elif a.outcome == "no-proposal":
            row["no_proposal"] += 1
        elif a.variant_id and archive.has(a.variant_id):
            child = archive.entry(a.variant_id)
            row["children"] += 1
            row["accepted"] += child.status == "accepted"
            row["failed"] += child.status == "failed"
            mine = archive.scores(child.variant_id, "select")
            theirs = archive.scores(a.parent_id, "select")
            common = [t for t in mine if t in theirs]
            if common and sum(mine[t].reward - theirs[t].reward for t in common) > 0:
                row["improved"] += 1
    for row in stats.values():
        row["success_rate"] = row["improved"] / row["proposals"] if row["proposals"] else 0.0
    return sorted(stats.values(), key=lambda r: r["operator"])


def safe_json(data: Any) -> str:
    """JSON that cannot end the ``<script>`` block it sits in, whatever its strings hold."""
    text = json.dumps(data, ensure_ascii=False, default=str)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def render_report(archive: Archive) -> str:
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    template = env.from_string(TEMPLATE.read_text())
    data = report_data(archive)
    return template.render(name=archive.name, data_json=safe_json(data))


def write_report(archive: Archive, path: Path | None = None) -> Path:
    """Write the page (atomically) to ``path`` (default ``<archive>/report.html``)."""
    from exapt.paths import atomic_write

    target = path or archive.root / "report.html"
    atomic_write(target, render_report(archive))
    return target
