"""`exapt report`: one self-contained page, rendered in headless Chromium, every node there,
a click shows the node's diff and scores; hostile text in the archive stays text."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from exapt.evolve.archive import Archive
from exapt.evolve.report import safe_json, write_report

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update",
        "--disable-sync"]  # fmt: skip


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        yield b
        b.close()


def test_report_renders_every_node_and_shows_a_diff_on_click(
    evolve_run: Callable[..., Any], browser: Any, home: Path
) -> None:
    evolve_run(generations=2, children=2)
    with Archive.open("t") as archive:
        path = write_report(archive)
        entries = archive.entries()
        careful = next(e for e in entries if e.operator == "reflect_prompt" and
                       "CAREFUL" in archive.variant(e.variant_id).prompt("instance"))  # fmt: skip
        n_test = len(archive.scores(careful.variant_id, "test"))
    html = path.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)  # nothing remote
    page = browser.new_page()
    errors: list[str] = []
    requests: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    page.goto(path.as_uri())
    nodes = page.locator("circle.node")
    assert nodes.count() == len(entries)
    ids = {nodes.nth(i).get_attribute("data-id") for i in range(nodes.count())}
    assert ids == {e.variant_id for e in entries}
    page.locator(f'circle.node[data-id="{careful.variant_id}"]').click()
    assert page.locator("#d-id").inner_text() == careful.variant_id
    diff = page.locator("#d-diff").inner_text()
    assert "+CAREFUL: {{ task.instruction }}" in diff and "prompts/instance.md.j2" in diff
    assert page.locator("#d-diff .add").count() >= 1
    rows = page.locator("#d-scores tbody tr")
    assert rows.count() == careful.n_scored + n_test
    assert page.locator("#ops tbody tr[data-operator=reflect_prompt]").count() == 1
    assert "best" in page.locator("#scores-chart").inner_html()
    assert page.locator("#spend-chart polyline").count() == 1
    assert errors == [] and requests == [path.as_uri()]
    page.close()


def test_hostile_text_cannot_leave_the_data_block(browser: Any, tmp_path: Path) -> None:
    evil = '</script><script>window.pwned=1</script><img src=x onerror="window.pwned=2">'
    assert "</script>" not in safe_json({"x": evil})
    page_path = tmp_path / "p.html"
    block = f'<script type="application/json" id="d">{safe_json({"x": evil})}</script>'
    reader = '<script>window.got = JSON.parse(document.getElementById("d").textContent).x</script>'
    page_path.write_text(block + reader)
    page = browser.new_page()
    page.goto(page_path.as_uri())
    assert page.evaluate("window.got") == evil and page.evaluate("window.pwned") is None
    page.close()


def test_a_hostile_description_is_shown_as_text(
    evolve_run: Callable[..., Any], browser: Any, home: Path
) -> None:
    evolve_run(generations=1, children=1, operators={"graph_options": 1.0})
    with Archive.open("t") as archive:
        child = next(e for e in archive.entries() if e.generation == 1)
        evil = '<img src=x onerror="window.pwned=1"></script><b>bold</b>'
        archive.update(child.variant_id, description=evil)
        path = write_report(archive)
    page = browser.new_page()
    page.goto(path.as_uri())
    page.locator(f'circle.node[data-id="{child.variant_id}"]').click()
    assert evil in page.locator("#d-kv").inner_text()
    assert page.evaluate("window.pwned") is None and page.locator("#d-kv b").count() == 0
    page.close()
