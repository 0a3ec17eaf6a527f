"""The page side of a browser episode: BrowserGym's task protocol, the observation an agent
sees, and reading it off a Playwright page with BrowserGym's own extractors. Every function
here runs in the worker's thread (``_browser_worker.py``)."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from exapt.sandbox._site import StaticSite

log = logging.getLogger("exapt.sandbox.browser")

_TRANSIENT = (  # observation errors BrowserGym's own env retries on
    "Frame was detached",
    "Frame with the given frameId is not found",
    "Execution context was destroyed",
    "Frame has been detached",
    "Cannot mark a child frame without a bid",
    "Cannot read properties of undefined",
)


class BrowserTask(Protocol):
    """BrowserGym's task protocol (``browsergym.core.task.AbstractBrowserTask``), the part
    this environment uses. ``validate`` returns ``(reward, done, message, info)``."""

    viewport: dict[str, int]
    timeout: int  # ms, Playwright's default per operation
    locale: str | None
    timezone_id: str | None

    def setup(self, page: Any) -> tuple[Any, dict[str, Any]]: ...

    def validate(self, page: Any, chat_messages: list[Any]) -> tuple[float, bool, str, dict]: ...

    def teardown(self) -> None: ...


@dataclass(frozen=True)
class Observation:
    """What the agent sees after a reset or an action (BrowserGym's observation, as text)."""

    goal: str
    url: str
    axtree: str  # flatten_axtree_to_str: "[bid] role 'name', properties" per line
    focused_bid: str = ""
    last_action: str = ""
    last_action_error: str = ""
    step: int = 0
    done: bool = False
    end_reason: str = ""  # why the episode is over (when done)
    screenshot: str | None = None  # PNG path, when screenshots are on


def new_context(browser: Any, task: BrowserTask) -> Any:
    """A fresh ``BrowserContext`` for ``task``: its viewport, locale and clock; no downloads,
    no service workers."""
    return browser.new_context(
        viewport=getattr(task, "viewport", None),
        locale=getattr(task, "locale", None),
        timezone_id=getattr(task, "timezone_id", None),
        accept_downloads=False,
        service_workers="block",
    )


def read_page(page: Any, block: Callable[[str, str], None]) -> tuple[str, str]:
    """The page's accessibility tree as text and the focused element's bid (BrowserGym's
    extraction, retried on its transient errors). ``block(url, reason)`` logs a frame
    that is skipped (``skip_dead_frames``)."""
    from browsergym.core.observation import (
        MarkingError,
        _post_extract,
        _pre_extract,
        extract_dom_extra_properties,
        extract_dom_snapshot,
        extract_focused_element_bid,
        extract_merged_axtree,
    )
    from browsergym.utils.obs import flatten_axtree_to_str
    from playwright.sync_api import Error as PlaywrightError

    skip_dead_frames(page, block)
    for attempt in range(3):
        try:
            _pre_extract(page, tags_to_mark="standard_html", lenient=attempt == 2)
            dom = extract_dom_snapshot(page)
            axtree = extract_merged_axtree(page)
            focused = extract_focused_element_bid(page)
            scale = getattr(page, "_bgym_scale_factor", 1.0)
            extra = extract_dom_extra_properties(dom, scale_factor=scale)
            break
        except (PlaywrightError, MarkingError) as exc:
            if attempt == 2 or not any(m in str(exc) for m in _TRANSIENT):
                raise
            time.sleep(0.3)
        finally:
            with contextlib.suppress(PlaywrightError):
                _post_extract(page)
    text = flatten_axtree_to_str(axtree, extra_properties=extra, with_clickable=True)
    return text, focused or ""


def skip_dead_frames(page: Any, block: Callable[[str, str], None]) -> None:
    """Frames whose navigation was refused before it started (a ``file:`` iframe) never
    get a document, and evaluating in them waits forever (BrowserGym's marking would):
    mark their elements ``sandbox`` so the marking skips them, as it skips sandboxed
    frames. Frames with a document (even an error page) are left alone."""
    from playwright.sync_api import Error as PlaywrightError

    for frame in page.frames[1:]:
        if frame.url or frame.is_detached():
            continue
        try:
            frame.wait_for_function("true", timeout=1000)
            continue
        except PlaywrightError:
            pass
        with contextlib.suppress(PlaywrightError):
            frame.frame_element().evaluate("e => e.setAttribute('sandbox', '')")
            block(f"(frame {frame.name or 'unnamed'})", "frame without a document")


def route_request(route: Any, site: StaticSite, block: Callable[[str, str], None]) -> None:
    """Answer a request the page makes (Playwright's ``route`` handler): from ``site``, or
    aborted and logged with ``block(url, reason)`` when it is not the site's."""
    request = route.request
    try:
        answer = site.lookup(request.url, request.method)
        if answer is None:
            block(request.url, "not the task's site")
            route.abort("blockedbyclient")
        else:
            route.fulfill(status=answer.status, content_type=answer.content_type, body=answer.body)
    except Exception as exc:  # the page went away meanwhile
        log.debug("routing %s failed: %s", request.url, exc)


def block_console(text: str, block: Callable[[str, str], None]) -> None:
    """Log with ``block`` what a console message says was refused outside routing."""
    if "Not allowed to load local resource" in text:
        block(text.rpartition(": ")[2], "local file")
    elif text.startswith("WebSocket connection to"):  # not routed: it met the dead proxy
        block(text.split("'")[1] if "'" in text else text, "websocket")


def save_screenshot(page: Any, path: Path) -> str:
    """A PNG of the page at ``path`` (its folder made); the path as text."""
    from browsergym.core.observation import extract_screenshot
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(extract_screenshot(page)).save(path)
    return str(path)


def wait_loaded(page: Any) -> None:
    """Wait (3 s at most a frame) for every frame's DOM to be loaded."""
    from playwright.sync_api import Error as PlaywrightError

    for frame in page.frames:
        with contextlib.suppress(PlaywrightError):
            frame.wait_for_load_state("domcontentloaded", timeout=3000)


def goal_text(goal: Any) -> str:
    """BrowserGym goals are text or OpenAI-style message parts: the text of them."""
    if goal is None:
        return ""
    if isinstance(goal, str):
        return goal
    parts = [p.get("text", "") for p in goal if isinstance(p, dict) and p.get("type") == "text"]
    return "\n".join(parts)
