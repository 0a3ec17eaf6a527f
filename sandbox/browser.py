"""The browser environment: BrowserGym's tasks, observation and action set, on Playwright
driving Debian's Chromium; one browser per worker, a fresh context per episode.

Why not ``browsergym.core.env.BrowserEnv`` itself: its ``reset`` launches a new browser for
every episode, plus a second Chromium for its chat window that ignores ``pw_chromium_kwargs``
(so it cannot be pointed at ``/usr/bin/chromium`` and fails here), and it drives one global
Playwright instance that only its first thread may use. This module keeps BrowserGym's
parts — the task protocol (``setup(page)`` / ``validate(page, chat)`` / ``teardown()``, e.g.
``browsergym.miniwob``'s tasks), the observation extractors and ``flatten_axtree_to_str``,
``HighLevelActionSet`` with its action parser and ``execute_python_code`` — and owns only
the loop around them: a long-lived browser per ``BrowserWorker`` thread, a new
``BrowserContext`` per ``BrowserEpisode``. Parts: ``_browser_actions.py`` (the action set
and its policy), ``_browser_worker.py`` (a browser and its thread), ``_chromium.py`` (the
launch and the jail), ``_site.py`` (the only pages there are).

An episode is the *sandbox* of a web task: it implements the ``Sandbox`` protocol so the
runner, the tools and the scorer handle it like any workspace —

- the workspace seed (``files``) names the episode (``episode.json``, the suite decides);
- ``exec`` runs nothing (a web task has no shell) and ``write`` is refused: the agent acts
  only through ``act(action)``, one BrowserGym action string such as ``click('12')``;
- ``snapshot()`` is the episode's final state: ``episode.json`` and ``result.json``, the
  reward as the task's own ``validate`` reported it, latched the moment the task said done,
  signed with a key only this process holds (``verify_result``). A scorer reads that, not
  the page: the reward is the environment's reading, never something the agent wrote.

What an agent cannot do (each refusal is an error observation, and logged):

- run script in the page: no BrowserGym action evaluates JavaScript; ``goto`` takes only
  http(s) URLs (``javascript:``, ``data:``, ``file:`` ... are refused), so the task's JS
  globals (MiniWoB's ``WOB_REWARD_GLOBAL``) are written only by the task's own code;
- reset its episode: a new document in the page after setup (a reload, a ``goto`` to the
  task page, ``go_back``) ends the episode with reward 0 (``left_task_page``);
- read host files: ``upload_file`` / ``mouse_upload_file`` are left out of the action set;
  tabs (``new_tab``...) too: the episode scores its own page;
- reach the network: every request goes through Playwright's routing; only the task's
  ``StaticSite`` answers (from the exapt process), everything else is aborted and logged in
  ``blocked``. Chromium runs in bubblewrap with an empty network namespace (``_chromium.py``),
  through a dead proxy, with name resolution disabled: a request routing does not see
  (WebSocket, WebRTC) has nowhere to go either.

Timeouts: each action (with its observation) has ``action_timeout_s``; past it the browser
is killed and the episode ends ``browser_crashed``; an episode older than
``episode_timeout_s`` ends ``episode_timeout``; the task's own clock (MiniWoB's time limit)
runs in the page. A browser that dies is restarted for the next episode; the episode it
died in ends with reward 0 and ``stop_reason`` ``browser_crashed``: the run goes on.

Example:
    pool = shared_pool(BrowserOptions())
    with pool.open(task, site) as episode:          # task: a BrowserGym task object
        print(episode.observe().axtree)
        episode.act("click('13')")
        result = verify_result(episode.snapshot()[RESULT_FILE])
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import hmac
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar, Protocol

from exapt.records import ExecResult
from exapt.sandbox._browser_actions import (
    ActionRefused,
    action_code,
    action_names,
    check_action,
    describe_actions,
    find_calls,
    tool_descriptions,
)
from exapt.sandbox._browser_worker import BrowserCrashed, BrowserOptions, BrowserWorker
from exapt.sandbox._site import StaticSite
from exapt.sandbox.base import Limits, SandboxError

__all__ = [
    "EPISODE_FILE",
    "RESULT_FILE",
    "ActionRefused",
    "BrowserCrashed",
    "BrowserEpisode",
    "BrowserOptions",
    "BrowserPool",
    "BrowserTask",
    "Observation",
    "StaticSite",
    "action_names",
    "check_action",
    "describe_actions",
    "find_calls",
    "shared_pool",
    "tool_descriptions",
    "verify_result",
]

log = logging.getLogger(__name__)

EPISODE_FILE = "episode.json"
RESULT_FILE = "result.json"
RESULT_SCHEMA = 1

_MARK_DOCUMENT = """t => Object.defineProperty(window, "__exapt_document",
    {value: t, writable: false, enumerable: false, configurable: false})"""
_SAME_DOCUMENT = "t => window.__exapt_document === t"
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


# --- the result, signed -----------------------------------------------------------------

_KEY = secrets.token_bytes(32)  # per process: results are verified where the episode ran


def _sign(result: dict[str, Any]) -> bytes:
    body = json.dumps(result, sort_keys=True, default=str)
    mac = hmac.new(_KEY, body.encode(), hashlib.sha256).hexdigest()
    return json.dumps({"result": json.loads(body), "signature": mac}, indent=1).encode()


def verify_result(data: bytes | str) -> dict[str, Any]:
    """The episode result in ``data`` (a snapshot's ``result.json``) if this process's
    environment wrote it; ``SandboxError`` otherwise (forged, edited, or from elsewhere)."""
    try:
        wrapped = json.loads(data)
        result, signature = wrapped["result"], wrapped["signature"]
    except (ValueError, KeyError, TypeError) as exc:
        raise SandboxError(f"{RESULT_FILE} is not an episode result: {exc}") from exc
    body = json.dumps(result, sort_keys=True, default=str)
    expected = hmac.new(_KEY, body.encode(), hashlib.sha256).hexdigest()
    if not isinstance(signature, str) or not hmac.compare_digest(signature, expected):
        raise SandboxError(f"{RESULT_FILE} was not written by this process's browser environment")
    return dict(result)


class BrowserPool:
    """Browser workers for episodes: an idle one is reused, a new one started when all are
    busy, so a run with N workers holds N browsers. Thread-safe."""

    def __init__(self, options: BrowserOptions | None = None) -> None:
        self.options = options or BrowserOptions()
        self._idle: list[BrowserWorker] = []
        self._all: list[BrowserWorker] = []
        self._lock = threading.Lock()
        self._closed = False

    def open(
        self, task: BrowserTask, site: StaticSite, files: Mapping[str, str | bytes] | None = None
    ) -> BrowserEpisode:
        """A new episode of ``task`` on a worker of this pool (set up, first observation
        taken). ``files`` is the workspace seed the episode was made from (kept in its
        snapshot). A browser that fails at setup is restarted and setup tried once more;
        if that fails too the episode starts ended (``browser_crashed``, or ``setup_failed``
        when the browser is fine but the page is not); it does not raise."""
        with self._lock:
            if self._closed:
                raise SandboxError("the browser pool is closed")
            worker = self._idle.pop() if self._idle else None
            if worker is None:
                worker = BrowserWorker(self.options, name=f"exapt-browser-{len(self._all)}")
                self._all.append(worker)
        return BrowserEpisode(self, worker, task, site, files)

    def release(self, worker: BrowserWorker) -> None:
        with self._lock:
            if worker.alive and not self._closed:
                self._idle.append(worker)
                return
            if worker in self._all:
                self._all.remove(worker)
        worker.close()

    @property
    def workers(self) -> list[BrowserWorker]:
        with self._lock:
            return list(self._all)

    def close(self) -> None:
        """Stop every browser of the pool (episodes still open end as crashed)."""
        with self._lock:
            self._closed = True
            workers, self._all, self._idle = list(self._all), [], []
        for worker in workers:
            worker.close()


_pools: dict[BrowserOptions, BrowserPool] = {}
_pools_lock = threading.Lock()


def shared_pool(options: BrowserOptions | None = None) -> BrowserPool:
    """The process's pool for ``options`` (created on first use, closed at exit)."""
    options = options or BrowserOptions()
    with _pools_lock:
        pool = _pools.get(options)
        if pool is None or pool._closed:
            pool = _pools[options] = BrowserPool(options)
        return pool


@atexit.register
def _close_pools() -> None:
    with _pools_lock:
        pools = list(_pools.values())
        _pools.clear()
    for pool in pools:
        pool.close()


# --- an episode -------------------------------------------------------------------------


class BrowserEpisode:
    """One episode of one task in a fresh browser context; a ``Sandbox`` (module doc).

    Thread-safe for one agent: every browser call runs in the worker's thread.
    """

    backend: ClassVar[str] = "browser"

    def __init__(
        self,
        pool: BrowserPool,
        worker: BrowserWorker,
        task: BrowserTask,
        site: StaticSite,
        files: Mapping[str, str | bytes] | None = None,
    ) -> None:
        self.pool, self.worker, self.task, self.site = pool, worker, task, site
        self.options = worker.options
        self.limits = Limits()
        self.files = {k: v.encode() if isinstance(v, str) else v for k, v in (files or {}).items()}
        self.id = secrets.token_hex(4)
        #: requests and actions refused: {"url", "reason", "t"} (first 200)
        self.blocked: list[dict[str, Any]] = []
        self.chat: list[dict[str, Any]] = []
        self.steps = 0
        self.goal = ""
        self.setup_s = 0.0
        self._result: dict[str, Any] | None = None
        self._last: tuple[float, bool, dict[str, Any]] = (0.0, False, {})
        self._obs = Observation(goal="", url="", axtree="")
        self._context: Any = None
        self._page: Any = None
        self._new_documents = 0
        self._document = ""
        self._started = time.monotonic()
        self._closed = False
        self._open()

    # --- the agent's side ----------------------------------------------------------------

    def observe(self) -> Observation:
        """The latest observation (after setup or the last action); no browser call."""
        return self._obs

    @property
    def done(self) -> bool:
        return self._result is not None

    def act(self, action: str) -> Observation:
        """Run one BrowserGym action; the observation after it. Never raises for what the
        action does: a refused or failing action is ``last_action_error``; an episode that
        is over (done, timed out, browser crashed) says so in ``done``/``end_reason``."""
        self._check_open()
        if self._result is not None:
            return replace(self._obs, last_action=action, last_action_error="the episode is over")
        if time.monotonic() - self._started > self.options.episode_timeout_s:
            self._safely(self._validate)
            self._finish("episode_timeout")
            return self._ended(action)
        try:
            check_action(action)
        except ActionRefused as exc:
            self._block(action, f"action refused: {exc.message}")
            self._obs = replace(self._obs, last_action=action, last_action_error=exc.message)
            return self._obs
        self.steps += 1
        try:
            self._obs = self.worker.call(
                lambda: self._in_act(action), timeout=self.options.action_timeout_s
            )
        except Exception as exc:
            self._fail(exc)
            return self._ended(action)
        return self._obs

    # --- the Sandbox protocol ---------------------------------------------------------

    def exec(
        self,
        cmd: str | list[str],
        *,
        timeout: float | None = None,
        env: dict[str, str] | None = None,
        stdin: str | bytes | None = None,
    ) -> ExecResult:
        """A web task has no shell: nothing runs (exit 126, the reason in stderr)."""
        return ExecResult(
            exit_code=126,
            stderr="a web task has no shell: act through the browser actions",
            backend=self.backend,
        )

    def write(self, path: str, data: str | bytes) -> None:
        raise SandboxError("a browser episode's files are read-only (they hold its result)")

    def read(self, path: str) -> bytes:
        files = self.snapshot()
        if path not in files:
            raise FileNotFoundError(path)
        return files[path]

    def snapshot(self, max_bytes: int = 50_000_000) -> dict[str, bytes]:
        """``episode.json`` (the seed) and ``result.json`` (the signed result, read now if
        the task has not finished)."""
        if self._result is None and not self._closed:
            self._safely(self._validate)
        return {**self.files, RESULT_FILE: _sign(self.result())}

    def result(self) -> dict[str, Any]:
        """The episode's result as it stands: latched when the task finished, else the
        task's latest reading with ``done`` false and ``stop_reason`` ``not_done``."""
        if self._result is not None:
            return dict(self._result)
        reward, done, info = self._last
        return self._record(reward, done, "not_done", info)

    def reset(self, files: Mapping[str, str | bytes] | None = None) -> None:
        """Start the same task again in a fresh context (other files: open a new episode)."""
        self._check_open()
        if (
            files is not None
            and {k: v.encode() if isinstance(v, str) else v for k, v in files.items()} != self.files
        ):
            raise SandboxError("a browser episode resets only to its own task; open a new one")
        self._safely(self._in_close_context)
        self.blocked, self.chat, self.steps, self._result = [], [], 0, None
        self._open()

    def close(self) -> None:
        """Close the context and give the browser back to the pool. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            self.worker.call(self._in_close_context, timeout=15)
        except Exception:  # a broken browser is killed; the next episode restarts it
            self.worker.kill()
        self.pool.release(self.worker)

    def __enter__(self) -> BrowserEpisode:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- internals (the _in_* methods run in the worker's thread) -------------------------

    def _open(self) -> None:
        """Set the episode up; a browser that fails at it is restarted and setup tried once
        more. A setup that fails on a live browser (the task's page) is not retried."""
        started = time.monotonic()
        for attempt in (1, 2):
            try:
                self._obs = self.worker.call(self._in_setup, timeout=self.options.launch_timeout_s)
                break
            except Exception as exc:
                self._safely(self._in_close_context)
                if attempt == 1 and not self._browser_alive():
                    log.warning("browser episode setup failed (%s); restarting the browser", exc)
                    self.worker.kill()
                    continue
                self._fail(exc, setup=True)
                self._obs = replace(self._obs, done=True, last_action_error=str(exc)[:500])
                break
        self.setup_s = time.monotonic() - started
        self._started = time.monotonic()

    def _browser_alive(self) -> bool:
        try:
            return self.worker.call(self.worker.connected, timeout=10)
        except Exception:
            return False

    def _in_setup(self) -> Observation:
        browser = self.worker.browser()
        task = self.task
        context = browser.new_context(
            viewport=getattr(task, "viewport", None),
            locale=getattr(task, "locale", None),
            timezone_id=getattr(task, "timezone_id", None),
            accept_downloads=False,
            service_workers="block",
        )
        self._context = context
        context.set_default_timeout(getattr(task, "timeout", 5000))
        context.route("**/*", self._in_route)
        page = context.new_page()
        self._page = page
        context.on("page", self._in_popup)
        page.on("console", self._in_console)
        goal, _info = task.setup(page)
        self.goal = _goal_text(goal)
        # A mark on this document: a reload or any other document lacks it (see _in_validate).
        self._document = secrets.token_hex(8)
        page.evaluate(_MARK_DOCUMENT, self._document)
        self._new_documents = 0
        page.on("load", self._in_load)
        self._in_validate()
        return self._in_observe("", "")

    def _in_act(self, action: str) -> Observation:
        from browsergym.core.action.base import execute_python_code

        error = ""
        try:
            execute_python_code(
                action_code(action),
                self._page,
                send_message_to_user=self._send_message,
                report_infeasible_instructions=self._send_message,
            )
        except Exception as exc:  # the action failed in the page: the agent's observation
            if not self.worker.connected():
                raise BrowserCrashed(f"the browser died during {action[:80]!r}: {exc}") from exc
            error = f"{type(exc).__name__}: {exc}".strip()
        time.sleep(self.options.pre_observation_delay_s)
        self._in_wait_loaded()
        self._in_validate()
        return self._in_observe(action, error)

    def _in_validate(self) -> None:
        if self._result is not None:
            return
        if self._new_documents or not self._in_same_document():
            # reloaded, navigated away, or an error page: not the task's page any more
            self._finish("left_task_page", reward=0.0)
            return
        try:
            reward, done, message, info = self.task.validate(self._page, self.chat)
        except Exception as exc:
            if not self.worker.connected():
                raise BrowserCrashed(f"the browser died: {exc}") from exc
            self._finish("validate_failed", reward=0.0, error=f"{type(exc).__name__}: {exc}")
            return
        if message:
            self.chat.append({"role": "user", "message": str(message), "timestamp": time.time()})
        self._last = (float(reward), bool(done), dict(info or {}))
        if done:
            self._finish("")

    def _in_same_document(self) -> bool:
        try:
            return bool(self._page.evaluate(_SAME_DOCUMENT, self._document))
        except Exception:
            if not self.worker.connected():
                raise
            return False

    def _validate(self) -> None:
        self.worker.call(self._in_validate, timeout=self.options.action_timeout_s)

    def _in_observe(self, action: str, error: str) -> Observation:
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

        page = self._page
        self._in_skip_dead_frames()
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
        return Observation(
            goal=self.goal,
            url=page.url,
            axtree=text,
            focused_bid=focused or "",
            last_action=action,
            last_action_error=error,
            step=self.steps,
            done=self._result is not None,
            end_reason=(self._result or {}).get("stop_reason", ""),
            screenshot=self._in_screenshot(),
        )

    def _in_skip_dead_frames(self) -> None:
        """Frames whose navigation was refused before it started (a ``file:`` iframe) never
        get a document, and evaluating in them waits forever (BrowserGym's marking would):
        mark their elements ``sandbox`` so the marking skips them, as it skips sandboxed
        frames. Frames with a document (even an error page) are left alone."""
        from playwright.sync_api import Error as PlaywrightError

        for frame in self._page.frames[1:]:
            if frame.url or frame.is_detached():
                continue
            try:
                frame.wait_for_function("true", timeout=1000)
                continue
            except PlaywrightError:
                pass
            with contextlib.suppress(PlaywrightError):
                frame.frame_element().evaluate("e => e.setAttribute('sandbox', '')")
                self._block(f"(frame {frame.name or 'unnamed'})", "frame without a document")

    def _in_screenshot(self) -> str | None:
        if not self.options.screenshots_dir:
            return None
        from browsergym.core.observation import extract_screenshot
        from PIL import Image

        folder = Path(self.options.screenshots_dir)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{self.id}-{self.steps:03d}.png"
        Image.fromarray(extract_screenshot(self._page)).save(path)
        return str(path)

    def _in_wait_loaded(self) -> None:
        from playwright.sync_api import Error as PlaywrightError

        for frame in self._page.frames:
            with contextlib.suppress(PlaywrightError):
                frame.wait_for_load_state("domcontentloaded", timeout=3000)

    def _in_route(self, route: Any) -> None:
        request = route.request
        try:
            answer = self.site.lookup(request.url, request.method)
            if answer is None:
                self._block(request.url, "not the task's site")
                route.abort("blockedbyclient")
            else:
                route.fulfill(
                    status=answer.status, content_type=answer.content_type, body=answer.body
                )
        except Exception as exc:  # the page went away meanwhile
            log.debug("routing %s failed: %s", request.url, exc)

    def _in_console(self, message: Any) -> None:
        text = str(message.text)
        if "Not allowed to load local resource" in text:
            self._block(text.rpartition(": ")[2], "local file")
        elif text.startswith("WebSocket connection to"):  # not routed: it met the dead proxy
            self._block(text.split("'")[1] if "'" in text else text, "websocket")

    def _in_popup(self, page: Any) -> None:
        if page is not self._page:
            self._block(page.url or "about:blank", "new window closed")
            with contextlib.suppress(Exception):
                page.close()

    def _in_load(self, _page: Any) -> None:
        self._new_documents += 1

    def _in_close_context(self) -> None:
        if self._context is None:
            return
        try:
            self.task.teardown()
        finally:
            context, self._context, self._page = self._context, None, None
            context.close()

    def _send_message(self, text: Any) -> None:
        if not isinstance(text, str):
            raise ValueError(f"messages are text, got {type(text).__name__}")
        self.chat.append({"role": "assistant", "message": text, "timestamp": time.time()})

    def _block(self, url: str, reason: str) -> None:
        log.warning("browser episode %s: blocked %s (%s)", self.id, url[:200], reason)
        if len(self.blocked) < 200:
            self.blocked.append({"url": url[:2000], "reason": reason, "t": time.time()})

    def _safely(self, fn: Callable[[], Any]) -> None:
        """Run ``fn`` (in the worker's thread when it is an ``_in_`` method); a broken
        browser ends the episode instead of raising."""
        try:
            if getattr(fn, "__name__", "").startswith("_in_"):
                self.worker.call(fn, timeout=self.options.action_timeout_s)
            else:
                fn()
        except Exception as exc:
            self._fail(exc)

    def _fail(self, exc: BaseException, *, setup: bool = False) -> None:
        """End the episode on an environment failure: ``browser_crashed`` (the browser died
        or hung: it is killed, the next episode gets a new one), else ``setup_failed`` or
        ``environment_error`` (the browser is fine, the page or an extraction failed)."""
        crashed = isinstance(exc, BrowserCrashed) or not self._browser_alive()
        reason = "browser_crashed" if crashed else "setup_failed" if setup else "environment_error"
        log.warning("browser episode %s: %s: %s", self.id, reason, exc)
        if crashed:
            self.worker.kill()
        if self._result is None:
            self._finish(reason, reward=0.0, error=f"{type(exc).__name__}: {exc}")

    def _finish(self, stop_reason: str, *, reward: float | None = None, error: str = "") -> None:
        """Latch the result: later readings of the page change nothing."""
        if self._result is not None:
            return
        last_reward, _done, info = self._last
        done = True if stop_reason else _done
        value = last_reward if reward is None else reward
        self._result = self._record(value, done, stop_reason, info)
        if error:
            self._result["error"] = error
        self._obs = replace(self._obs, done=True, end_reason=stop_reason or "done")

    def _record(self, reward: float, done: bool, stop_reason: str, info: dict) -> dict[str, Any]:
        return {
            "schema": RESULT_SCHEMA,
            "episode": self.id,
            "goal": self.goal,
            "reward": reward,
            "done": done,
            "stop_reason": stop_reason,
            "info": info,
            "steps": self.steps,
            "elapsed_s": round(time.monotonic() - self._started, 3),
            "setup_s": round(self.setup_s, 3),
            "blocked": list(self.blocked),
            "chat": [m for m in self.chat if m.get("role") == "assistant"],
        }

    def _ended(self, action: str) -> Observation:
        reason = (self._result or {}).get("stop_reason", "")
        error = (self._result or {}).get("error", "")
        return replace(
            self._obs,
            last_action=action,
            last_action_error=error or f"the episode ended ({reason})",
            done=True,
            end_reason=reason,
        )

    def _check_open(self) -> None:
        if self._closed:
            raise SandboxError("this browser episode is closed")


def _goal_text(goal: Any) -> str:
    """BrowserGym goals are text or OpenAI-style message parts: the text of them."""
    if goal is None:
        return ""
    if isinstance(goal, str):
        return goal
    parts = [p.get("text", "") for p in goal if isinstance(p, dict) and p.get("type") == "text"]
    return "\n".join(parts)
