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
``BrowserContext`` per ``BrowserEpisode``. Parts: ``_browser_episode.py`` (an episode, the
``Sandbox`` of a web task), ``_browser_page.py`` (the task protocol, the observation and
reading it off the page), ``_browser_result.py`` (the signed result),
``_browser_actions.py`` (the action set and its policy), ``_browser_worker.py`` (a browser
and its thread), ``_chromium.py`` (the launch and the jail), ``_site.py`` (the only pages
there are). This module holds the pool of browsers and names the public parts.

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
import threading
from collections.abc import Mapping

from exapt.sandbox._browser_actions import (
    ActionRefused,
    action_names,
    check_action,
    describe_actions,
    find_calls,
    tool_descriptions,
)
from exapt.sandbox._browser_episode import BrowserEpisode
from exapt.sandbox._browser_page import BrowserTask, Observation
from exapt.sandbox._browser_result import EPISODE_FILE, RESULT_FILE, verify_result
from exapt.sandbox._browser_worker import BrowserCrashed, BrowserOptions, BrowserWorker
from exapt.sandbox._site import StaticSite
from exapt.sandbox.base import SandboxError

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
