"""``exapt report NAME``: an evolution archive as one self-contained HTML page."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def report(
    name: Annotated[str, typer.Argument(help="archive name (see `exapt archive list`)")],
    out: Annotated[
        Path | None, typer.Option(help="where to write it (default <archive>/report.html)")
    ] = None,
) -> None:
    """Write an archive's report as one HTML page (lineage, scores, spend, operators).

    The lineage tree (click a node for its diff and scores), best and median score by
    generation, spend over time, operator success rates; no network needed to view it.

    Example: exapt report he1 && xdg-open .exapt/archive/he1/report.html
    """
    from exapt.evolve.archive import Archive
    from exapt.evolve.report import write_report

    with Archive.open(name) as archive:
        path = write_report(archive, out)
    print(path)
