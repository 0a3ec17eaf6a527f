"""MiniWoB++: 125 web tasks (PyPI ``miniwob``'s pages, BrowserGym's task definitions), in
a real browser.

``load_suite("miniwob")`` lists BrowserGym's MiniWoB tasks (``browsergym.miniwob``) whose page
the installed ``miniwob`` package ships, as ``miniwob/<name>`` (``miniwob/click-test``...).
Options follow a colon, comma-separated: ``miniwob:timed,seed=3,screenshots,pass=positive``.

- **Seeds**: each task has a fixed seed (from its name and ``seed=``, default 0), so every
  attempt at a task — every trial, every run — faces the same generated problem.
- **Instruction**: the episode's utterance (``Click on the "OK" button.``), which MiniWoB
  generates when the episode starts; ``Task.instruction`` names the task and its
  description, and the agent gets the utterance as the goal of its first observation.
- **Time limit** (``Task.metadata["time_limit_s"]``): the task page's own
  ``core.EPISODE_MAX_TIME`` (10 s unless the page sets another). By default the page's clock
  is BrowserGym's (1000 s: language models are slower than MiniWoB's clock assumes), and the
  score is the raw reward; ``timed`` runs every episode on the task's own limit, as MiniWoB
  does: timing out ends it with -1, and the score is the time-decayed reward.
- **Reward**: MiniWoB's own, read from the page by the task's ``validate`` the way
  MiniWoB's harness does (``WOB_RAW_REWARD_GLOBAL``, ``WOB_REWARD_GLOBAL``) and latched by
  the browser environment when the task ends. Raw and decayed rewards are in [-1, 1];
  ``Score.reward`` is max(0, the scored one); ``passed`` = the full raw reward (1), or raw
  reward > 0 with ``pass=positive`` (BrowserGym's success, which counts partial credit).
  ``feedback`` shows both rewards and MiniWoB's reason.

How a web episode fits the runner (``Sandbox`` in, snapshot out, ``Scorer`` on the snapshot):
the suite's ``environment_factory`` opens a ``BrowserEpisode`` (``exapt.sandbox.browser``)
where a code suite opens a bubblewrap sandbox. The episode *is* the agent's workspace: its
seed file ``episode.json`` names the task and seed; the agent acts through the web tools;
the episode owns the reward. ``snapshot()`` returns ``result.json``, which the environment
signs; ``MiniWoBScorer`` verifies the signature and scores what it says. Nothing the agent
does can write that file (an episode refuses writes and runs no commands) or the JS globals
it is read from (no action runs script; ``javascript:`` URLs are refused).

Example:
    suite = load_suite("miniwob")
    task = next(t for t in suite.tasks() if t.id == "miniwob/click-test")
    factory = suite.environment_factory("bwrap")
    with factory(task.files) as episode:
        episode.act("click('13')")
        score = suite.scorer().score(task, episode.snapshot(), factory)
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exapt.errors import ConfigError, UnavailableError
from exapt.records import Score, Task
from exapt.sandbox.base import Limits, SandboxError
from exapt.tasks.base import SandboxFactory

SUITE = "miniwob"
LANGUAGE = "web"
DEFAULT_TIME_LIMIT_MS = 10_000  # core.js: core.EPISODE_MAX_TIME when a page sets none
UNTIMED_MS = 1_000_000  # BrowserGym's episode_max_time default
#: Episode ends that are the environment's fault, not the agent's: reported as ``error``.
ENVIRONMENT_FAILURES = ("browser_crashed", "setup_failed", "environment_error")
_PAGE_LIMIT = re.compile(r"core\.EPISODE_MAX_TIME\s*=\s*(\d+)")

INSTRUCTION = """\
Solve the MiniWoB++ web task `{name}` in the browser: {description}
The exact goal is shown with the page when the episode starts.
"""


@dataclass(frozen=True)
class MiniWoBOptions:
    """``timed``: the task's own time limit and time-decayed score; ``seed``: base seed;
    ``screenshots``: a PNG per observation under ``<exapt home>/attachments/``; ``success``:
    ``full`` (a pass is MiniWoB's full raw reward, 1) or ``positive`` (raw reward > 0,
    BrowserGym's success: it counts partial credit, e.g. 0.2 on click-checkboxes for
    submitting without ticking anything)."""

    timed: bool = False
    seed: int = 0
    screenshots: bool = False
    success: str = "full"

    @classmethod
    def parse(cls, text: str) -> MiniWoBOptions:
        """``"timed,seed=3,screenshots,pass=positive"`` -> options; ``ConfigError`` names a
        bad one."""
        values: dict[str, Any] = {}
        for raw in filter(None, (part.strip() for part in text.split(","))):
            key, sep, value = raw.partition("=")
            if key in ("timed", "screenshots") and not sep:
                values[key] = True
            elif key == "seed" and sep and value.strip().lstrip("-").isdigit():
                values["seed"] = int(value)
            elif key == "pass" and value in ("full", "positive"):
                values["success"] = value
            else:
                raise ConfigError(
                    f"bad miniwob option {raw!r}",
                    hint="options: timed, screenshots, seed=N, pass=full|positive "
                    "(e.g. --suite miniwob:timed,seed=1)",
                )
        return cls(**values)


def html_dir() -> Path:
    """The ``miniwob/html`` folder the PyPI ``miniwob`` package ships."""
    try:
        import miniwob
    except ImportError as exc:
        raise UnavailableError(
            "the MiniWoB++ pages are not installed", hint="pip install miniwob==1.1.0"
        ) from exc
    return Path(miniwob.__file__).parent / "html"


@functools.cache
def task_classes() -> dict[str, Any]:
    """BrowserGym's MiniWoB task classes by name, for the pages this ``miniwob`` ships."""
    try:
        from browsergym.miniwob import ALL_MINIWOB_TASKS
    except ImportError as exc:
        raise UnavailableError(
            "BrowserGym's MiniWoB tasks are not installed",
            hint="pip install browsergym-miniwob==0.14.3",
        ) from exc
    pages = html_dir() / "miniwob"
    return {
        cls.subdomain: cls
        for cls in ALL_MINIWOB_TASKS
        if (pages / f"{cls.subdomain}.html").is_file()
    }


def time_limit_ms(name: str) -> int:
    """The task page's own episode time limit (``core.EPISODE_MAX_TIME``), in ms."""
    text = (html_dir() / "miniwob" / f"{name}.html").read_text(encoding="utf-8", errors="replace")
    found = _PAGE_LIMIT.findall(text)
    return int(found[-1]) if found else DEFAULT_TIME_LIMIT_MS


def task_seed(name: str, base: int) -> int:
    """A fixed seed per task: from its name (SHA-256) and the suite's base seed."""
    digest = hashlib.sha256(f"{SUITE}/{name}/{base}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % 1_000_000


class MiniWoBSuite:
    """The MiniWoB++ tasks in BrowserGym's order; see the module docstring.

    Example:
        suite = MiniWoBSuite(MiniWoBOptions(timed=True))
    """

    name = SUITE

    def __init__(self, options: MiniWoBOptions | None = None) -> None:
        self.options = options or MiniWoBOptions()

    @classmethod
    def from_spec(cls, arg: str) -> MiniWoBSuite:
        return cls(MiniWoBOptions.parse(arg))

    def tasks(self) -> Iterator[Task]:
        for name, cls in task_classes().items():
            yield self.make_task(name, cls)

    def make_task(self, name: str, cls: Any) -> Task:
        own_limit = time_limit_ms(name)
        seed = task_seed(name, self.options.seed)
        clock = own_limit if self.options.timed else UNTIMED_MS
        episode = {"suite": SUITE, "task": name, "seed": seed, "episode_max_time_ms": clock}
        description = str(getattr(cls, "desc", "")).strip() or name
        return Task(
            id=f"{SUITE}/{name}",
            suite=SUITE,
            instruction=INSTRUCTION.format(name=name, description=description),
            files={"episode.json": json.dumps(episode, sort_keys=True) + "\n"},
            language=LANGUAGE,
            metadata={
                "environment": "browser",
                "miniwob_task": name,
                "description": description,
                "seed": seed,
                "time_limit_s": own_limit / 1000,
                "timed": self.options.timed,
            },
        )

    def scorer(self) -> MiniWoBScorer:
        return MiniWoBScorer(timed=self.options.timed, success=self.options.success)

    def limits(self) -> Limits:
        return Limits()

    def ro_binds(self) -> list[str]:
        return []

    def environment_factory(self, backend: str = "default") -> SandboxFactory:
        """Opens a browser episode for a task's ``files`` (its ``episode.json``): Chromium
        in bubblewrap for the isolating backends, unjailed for ``local``. One browser per
        concurrent episode, reused across episodes (``shared_pool``)."""
        from exapt.sandbox.browser import BrowserOptions, StaticSite, shared_pool

        if backend == "docker":
            raise ConfigError(
                "the browser of web tasks runs under bubblewrap, not Docker",
                hint="use --sandbox bwrap (the default when installed) or --sandbox local",
            )
        isolation = "none" if backend == "local" else "bwrap"
        screenshots = None
        if self.options.screenshots:
            from exapt.paths import subdir

            screenshots = str(subdir("attachments") / "miniwob")
        pool = shared_pool(BrowserOptions(isolation=isolation, screenshots_dir=screenshots))
        site = StaticSite(html_dir())

        def open_episode(files: dict[str, str | bytes]) -> Any:
            return pool.open(build_task(files, site.url("miniwob/")), site, files)

        return open_episode


def build_task(files: dict[str, str | bytes], base_url: str) -> Any:
    """The BrowserGym task object ``files["episode.json"]`` names; ``ConfigError`` if bad."""
    raw = files.get("episode.json")
    if raw is None:
        raise ConfigError(
            "a miniwob episode needs episode.json in its files", hint="use tasks of the suite"
        )
    try:
        spec = json.loads(raw)
        cls = task_classes()[spec["task"]]
        seed, clock = int(spec["seed"]), int(spec["episode_max_time_ms"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"episode.json is not a miniwob episode: {exc}") from exc
    return cls(seed=seed, base_url=base_url, episode_max_time=clock, remove_human_display=True)


class MiniWoBScorer:
    """Scores the browser environment's signed episode result (module docstring)."""

    def __init__(self, timed: bool = False, success: str = "full") -> None:
        if success not in ("full", "positive"):
            raise ConfigError(f"success must be 'full' or 'positive', got {success!r}")
        self.timed, self.success = timed, success

    def score(self, task: Task, workspace: dict[str, bytes], sandbox: SandboxFactory) -> Score:
        from exapt.sandbox.browser import RESULT_FILE, verify_result

        data = workspace.get(RESULT_FILE)
        if data is None:
            return Score(
                reward=0.0,
                passed=False,
                feedback="no episode result",
                error=f"{RESULT_FILE} is missing: the episode did not run in a browser",
            )
        try:
            result = verify_result(data)
        except SandboxError as exc:
            return Score(reward=0.0, passed=False, feedback="no valid result", error=exc.message)
        info = result.get("info") or {}
        raw = _number(info.get("RAW_REWARD_GLOBAL"))
        decayed = _number(info.get("REWARD_GLOBAL"))
        stop = str(result.get("stop_reason") or "")
        done = bool(result.get("done")) and bool(info.get("DONE_GLOBAL"))
        scored = decayed if self.timed else raw
        finished = done and not stop
        passed = finished and (raw >= 1.0 if self.success == "full" else raw > 0)
        error = result.get("error") if stop in ENVIRONMENT_FAILURES else None
        limit = task.metadata.get("time_limit_s")
        lines = [
            f"MiniWoB reward: raw {raw:+.2f}, time-decayed {decayed:+.2f}"
            + (f" (time limit {limit:g} s)" if self.timed and limit else ""),
            f"episode: {'done' if done else 'not finished'} after {result.get('steps', 0)} "
            f"action(s), {result.get('elapsed_s', 0):.1f} s" + (f"; ended: {stop}" if stop else ""),
        ]
        if info.get("REWARD_REASON"):
            lines.append(f"reason: {info['REWARD_REASON']}")
        if result.get("blocked"):
            lines.append(f"blocked: {len(result['blocked'])} request(s) or action(s)")
        # The verdict is the environment's own reading of the page (MiniWoB's validate, in the
        # process that ran the episode, signed): no agent action runs script, so the agent
        # cannot write it. That is a judge out of the agent's reach: evidence "judge".
        return Score(
            reward=max(0.0, min(1.0, scored)) if finished else 0.0,
            passed=passed,
            feedback="\n".join(lines),
            error=str(error) if error else None,
            evidence="judge" if finished else "none",
            tests_expected=1,
            tests_passed=1 if passed else 0,
            failure=None if passed else (stop or "tests_failed"),
        )


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0
