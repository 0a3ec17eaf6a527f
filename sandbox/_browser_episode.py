"""``BrowserEpisode``: one episode of one task in a fresh browser context, the ``Sandbox``
of a web task (``browser.py``'s doc says what it guarantees)."""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar, Protocol

from exapt.records import ExecResult
from exapt.sandbox._browser_actions import ActionRefused, action_code, check_action
from exapt.sandbox._browser_page import (
    BrowserTask,
    Observation,
    block_console,
    goal_text,
    new_context,
    read_page,
    route_request,
    save_screenshot,
    wait_loaded,
)
from exapt.sandbox._browser_result import RESULT_FILE, RESULT_SCHEMA, sign_result
from exapt.sandbox._browser_worker import BrowserCrashed, BrowserWorker
from exapt.sandbox._site import StaticSite
from exapt.sandbox.base import Limits, SandboxError

log = logging.getLogger("exapt.sandbox.browser")

_MARK_DOCUMENT = """t => Object.defineProperty(window, "__exapt_document",
    {value: t, writable: false, enumerable: false, configurable: false})"""
_SAME_DOCUMENT = "t => window.__exapt_document === t"


class _Pool(Protocol):
    """Where an episode gives its worker back when it closes (``BrowserPool``)."""

    def release(self, worker: BrowserWorker) -> None: ...


class BrowserEpisode:
    """One episode of one task in a fresh browser context; a ``Sandbox`` (module doc).

    Thread-safe for one agent: every browser call runs in the worker's thread.
    """

    backend: ClassVar[str] = "browser"

    def __init__(
        self,
        pool: _Pool,
        worker: BrowserWorker,
        task: BrowserTask,
        site: StaticSite,
        files: Mapping[str, str | bytes] | None = None,
    ) -> None:
        self.pool, self.worker, self.task, self.site = pool, worker, task, site
        self.options = worker.options
        self.limits = Limits()
        self.files = _as_bytes(files or {})
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
        return {**self.files, RESULT_FILE: sign_result(self.result())}

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
        if files is not None and _as_bytes(files) != self.files:
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
        task = self.task
        context = self._context = new_context(self.worker.browser(), task)
        context.set_default_timeout(getattr(task, "timeout", 5000))
        context.route("**/*", self._in_route)
        page = context.new_page()
        self._page = page
        context.on("page", self._in_popup)
        page.on("console", self._in_console)
        goal, _info = task.setup(page)
        self.goal = goal_text(goal)
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
        wait_loaded(self._page)
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
        page = self._page
        text, focused = read_page(page, self._block)
        return Observation(
            goal=self.goal,
            url=page.url,
            axtree=text,
            focused_bid=focused,
            last_action=action,
            last_action_error=error,
            step=self.steps,
            done=self._result is not None,
            end_reason=(self._result or {}).get("stop_reason", ""),
            screenshot=self._in_screenshot(),
        )

    def _in_screenshot(self) -> str | None:
        if not self.options.screenshots_dir:
            return None
        path = Path(self.options.screenshots_dir) / f"{self.id}-{self.steps:03d}.png"
        return save_screenshot(self._page, path)

    def _in_route(self, route: Any) -> None:
        route_request(route, self.site, self._block)

    def _in_console(self, message: Any) -> None:
        block_console(str(message.text), self._block)

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


def _as_bytes(files: Mapping[str, str | bytes]) -> dict[str, bytes]:
    return {k: v.encode() if isinstance(v, str) else v for k, v in files.items()}
