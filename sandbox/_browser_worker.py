"""``BrowserWorker``: one Chromium and its Playwright driver, owned by one thread, and the
``BrowserOptions`` it is started with."""

from __future__ import annotations

import contextlib
import queue
import shutil
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from exapt.sandbox import _chromium
from exapt.sandbox.base import SandboxError

T = TypeVar("T")

#: Flags for the isolation layers outside Playwright's routing (``browser.py``'s doc).
NETWORK_ARGS = (
    "--proxy-server=http://127.0.0.1:9",  # nothing answers: requests routing misses fail
    "--proxy-bypass-list=<-loopback>",  # ... loopback included
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--force-webrtc-ip-handling-policy=disable_non_proxied_udp",
    "--dns-prefetch-disable",
)


class BrowserCrashed(SandboxError):
    """The browser died or stopped answering; it is restarted for the next episode."""


class BrowserOptions(BaseModel):
    """How browsers are started and how long an episode may take. Frozen: a pool per value."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    executable: str = _chromium.CHROMIUM
    isolation: Literal["bwrap", "none"] = Field(
        "bwrap", description="bwrap: Chromium in a bubblewrap jail; none: no jail (routing only)"
    )
    args: tuple[str, ...] = _chromium.DEFAULT_ARGS + NETWORK_ARGS
    launch_timeout_s: float = Field(60.0, gt=0)
    action_timeout_s: float = Field(30.0, gt=0, description="one action and its observation")
    episode_timeout_s: float = Field(900.0, gt=0, description="from setup to the last action")
    pre_observation_delay_s: float = Field(
        0.5, ge=0, description="wait after an action before reading the page (BrowserGym's)"
    )
    screenshots_dir: str | None = Field(None, description="save a PNG per observation here")


class BrowserWorker:
    """One Chromium and its Playwright driver, owned by one thread: Playwright's sync API
    may only be used from the thread that started it, so every call is run there (``call``).
    """

    def __init__(self, options: BrowserOptions, name: str = "exapt-browser") -> None:
        self.options = options
        self.launches = 0
        self.alive = True
        self._state = Path(tempfile.mkdtemp(prefix="exapt-browser-worker-"))
        self._pidfile = self._state / "pid"
        (self._state / "home").mkdir()
        self._browser: Any = None
        self._stale = False  # killed: launch a new one even if Playwright has not noticed yet
        self._playwright: Any = None
        self._start_error: BaseException | None = None
        self._jobs: queue.Queue[tuple[Callable[[], Any], Future[Any]] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()

    def call(self, fn: Callable[[], T], timeout: float) -> T:
        """Run ``fn`` in the browser's thread; ``BrowserCrashed`` if it takes longer than
        ``timeout`` seconds (the browser is then killed, so the stuck call returns)."""
        if not self.alive:
            raise BrowserCrashed("this browser worker has stopped")
        future: Future[T] = Future()
        self._jobs.put((fn, future))
        try:
            return future.result(timeout)
        except FutureTimeout:
            self.kill()
            try:
                future.result(15)
            except FutureTimeout:  # not even a killed browser freed the thread: retire it
                self.alive = False
            except Exception:
                pass
            raise BrowserCrashed(
                f"the browser did not answer within {timeout:.0f} s; it was killed and is "
                "restarted for the next episode"
            ) from None

    def _main(self) -> None:
        try:
            from playwright.sync_api import sync_playwright

            self._playwright = sync_playwright().start()
            # BrowserGym's actions find elements by the "bid" attribute it marks them with
            self._playwright.selectors.set_test_id_attribute("bid")
        except BaseException as exc:  # reported to every caller
            self._start_error = exc
        while True:
            job = self._jobs.get()
            if job is None:
                break
            fn, future = job
            if not future.set_running_or_notify_cancel():
                continue
            try:
                if self._start_error is not None:
                    raise BrowserCrashed(f"Playwright did not start: {self._start_error}")
                future.set_result(fn())
            except BaseException as exc:
                future.set_exception(exc)
        self._shutdown()

    def browser(self) -> Any:
        """The running browser, launched (again) if needed. In the worker's thread only."""
        if self._browser is not None and self._browser.is_connected() and not self._stale:
            return self._browser
        if self._browser is not None:
            self._forget_browser()
        self._stale = False
        self._pidfile.unlink(missing_ok=True)
        executable = _chromium.launcher(self.options.executable, self.options.isolation)
        env = {  # the browser gets nothing of our environment (API keys stay here)
            "PATH": "/usr/bin:/bin",
            "HOME": str(self._state / "home"),
            _chromium.PIDFILE_ENV: str(self._pidfile),
        }
        self._browser = self._playwright.chromium.launch(
            executable_path=str(executable),
            headless=True,
            args=list(self.options.args),
            ignore_default_args=["--hide-scrollbars"],  # as BrowserGym's env
            env=env,
            timeout=self.options.launch_timeout_s * 1000,
        )
        self.launches += 1
        return self._browser

    def connected(self) -> bool:
        """Is the browser up? In the worker's thread only."""
        return self._browser is not None and not self._stale and self._browser.is_connected()

    def _forget_browser(self) -> None:
        pid = self.pid
        with contextlib.suppress(Exception):
            self._browser.close()
        if pid:
            _chromium.kill_tree(pid)
        self._browser = None

    @property
    def pid(self) -> int | None:
        """The pid of the browser's launcher (bwrap, or Chromium itself without a jail)."""
        return _chromium.read_pid(self._pidfile)

    def memory_bytes(self) -> int:
        """Memory (PSS) of the browser's processes (0 when none runs)."""
        pid = self.pid
        return _chromium.memory_bytes(pid) if pid else 0

    def kill(self) -> None:
        """SIGKILL the browser's processes (any thread): calls in flight fail at once."""
        self._stale = True
        pid = self.pid
        if pid:
            _chromium.kill_tree(pid)

    def close(self, timeout: float = 20.0) -> None:
        """Stop the browser, the driver and the thread. Idempotent."""
        if not self._thread.is_alive():
            shutil.rmtree(self._state, ignore_errors=True)
            return
        self._jobs.put(None)
        self._thread.join(timeout)
        if self._thread.is_alive():
            self.kill()
        self.alive = False
        shutil.rmtree(self._state, ignore_errors=True)

    def _shutdown(self) -> None:
        try:
            if self._browser is not None:
                self._browser.close()
        except Exception:
            self.kill()
        try:
            if self._playwright is not None:
                self._playwright.stop()
        except Exception:
            pass
        self._browser = self._playwright = None
