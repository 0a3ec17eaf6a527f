"""The browser environment against bare Playwright on the same MiniWoB++ pages, and the
default web agent's pass rate with ``local`` on 20 MiniWoB tasks; prints a table, saves
``bench/results/web.json``.

Part 1, in one process, alternating (shuffled order each round), medians:

- **reset**: close the previous episode and have the next one ready. Ours: ``BrowserPool``
  episode close + open (new context, BrowserGym's MiniWoB setup, the first observation:
  accessibility tree extracted and flattened). Bare Playwright: context close + new context,
  page, ``goto`` (pages from ``http.server`` on 127.0.0.1), seed, ``core.startEpisodeReal()``,
  read ``#query``. Same Chromium, same flags; ours in its bubblewrap jail (and unjailed).
- **actions per second** on ``enter-text`` (``fill`` never ends that episode): ours
  ``episode.act`` (BrowserGym action + the reward read + the next observation), with
  BrowserGym's 0.5 s pre-observation delay (the default) and with none (the overhead
  alone); bare: ``page.fill`` + reading the WOB globals.
- **memory per browser worker**: PSS of the browser's process tree with one episode open,
  and of its Playwright driver (ours: one driver per worker; bare: one).

Part 2: ``exapt``'s run engine with the default spec for web tasks (``web_agent``, completion
mode for the base model) and ``local`` on 20 simple MiniWoB tasks, memory off, one trial;
beside it a random clicker (clicks a random element id of the page each step, same budget)
as the floor.

Run: ``python bench/web.py`` (about 20-40 min on 2 cores, most of it the local model);
``--skip-agent`` for part 1 only.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import random
import re
import statistics
import sys
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine_info, write_result

from exapt.sandbox._chromium import CHROMIUM, DEFAULT_ARGS, memory_bytes
from exapt.sandbox.browser import BrowserOptions, BrowserPool, StaticSite
from exapt.tasks.miniwob import MiniWoBSuite, build_task, html_dir

AGENT_TASKS = (
    "click-test", "click-test-2", "click-button", "click-button-sequence", "click-link",
    "click-dialog", "click-dialog-2", "click-checkboxes", "click-option", "click-tab",
    "click-widget", "click-collapsible", "enter-text", "enter-text-2", "enter-password",
    "focus-text", "focus-text-2", "login-user", "choose-list", "navigate-tree",
)  # fmt: skip
RESET_TASKS = ("click-test", "click-button", "enter-text", "login-user")
ACTION_TASK = "enter-text"


def stats(values: list[float]) -> dict[str, float]:
    values = sorted(values)
    return {
        "median": round(statistics.median(values), 4),
        "p10": round(values[len(values) // 10], 4),
        "p90": round(values[(len(values) * 9) // 10], 4),
        "n": len(values),
    }


# --- bare Playwright ------------------------------------------------------------------


class Bare:
    """The same pages driven with Playwright alone: what the environment is compared to."""

    def __init__(self, base_url: str) -> None:
        from playwright.sync_api import sync_playwright

        before = {p.pid for p in psutil.Process().children()}
        self.playwright = sync_playwright().start()
        self.driver = next(
            (p.pid for p in psutil.Process().children() if p.pid not in before), None
        )
        self.browser = self.playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=list(DEFAULT_ARGS)
        )
        self.base_url = base_url
        self.context: Any = None
        self.page: Any = None

    def reset(self, name: str, seed: int) -> str:
        if self.context is not None:
            self.context.close()
        self.context = self.browser.new_context(viewport={"width": 332, "height": 214})
        self.page = self.context.new_page()
        self.page.goto(f"{self.base_url}miniwob/{name}.html")
        self.page.evaluate(
            "s => { Math.seedrandom(s); core.EPISODE_MAX_TIME = 1000000; "
            "core.startEpisodeReal(); }",
            seed,
        )
        self.page.wait_for_function("() => WOB_TASK_READY")
        return str(self.page.inner_text("#query"))

    def act(self) -> Any:
        self.page.fill("#tt", "abc", timeout=500)
        return self.page.evaluate("() => [WOB_DONE_GLOBAL, WOB_RAW_REWARD_GLOBAL]")

    def memory(self) -> tuple[int, int]:
        """(browser PSS, driver PSS) in bytes."""
        if self.driver is None:
            return 0, 0
        driver = psutil.Process(self.driver)
        browsers = [c.pid for c in driver.children() if "chrom" in c.name()]
        driver_pss = driver.memory_full_info().pss
        return sum(memory_bytes(pid) for pid in browsers), driver_pss

    def close(self) -> None:
        if self.context is not None:
            self.context.close()
        self.browser.close()
        self.playwright.stop()


def serve(root: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    handler = functools.partial(QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


# --- ours -----------------------------------------------------------------------------


class Ours:
    def __init__(self, suite: MiniWoBSuite, isolation: str, delay: float = 0.5) -> None:
        self.pool = BrowserPool(
            BrowserOptions(isolation=isolation, pre_observation_delay_s=delay)  # type: ignore[arg-type]
        )
        self.site = StaticSite(html_dir())
        self.tasks = {t.metadata["miniwob_task"]: t for t in suite.tasks()}
        self.episode: Any = None

    def reset(self, name: str, seed: int) -> str:
        if self.episode is not None:
            self.episode.close()
        files = dict(self.tasks[name].files)
        self.episode = self.pool.open(build_task(files, self.site.url("miniwob/")), self.site)
        assert not self.episode.done, self.episode.result()
        return str(self.episode.observe().goal)

    def act(self, action: str) -> Any:
        observation = self.episode.act(action)
        assert not observation.last_action_error, observation.last_action_error
        return observation

    def memory(self) -> tuple[int, int]:
        worker = self.episode.worker
        driver = 0
        for child in psutil.Process().children():
            if "node" in child.name() and worker.pid in [c.pid for c in child.children()]:
                driver = child.memory_full_info().pss
        return worker.memory_bytes(), driver

    def close(self) -> None:
        if self.episode is not None:
            self.episode.close()
        self.pool.close()


def part1(suite: MiniWoBSuite, episodes: int, actions: int, isolations: list[str]) -> dict:
    server, base_url = serve(html_dir())
    sides: dict[str, Any] = {"bare_playwright": Bare(base_url)}
    for isolation in isolations:
        sides[f"exapt_{isolation}"] = Ours(suite, isolation)
    sides["exapt_no_delay"] = Ours(suite, isolations[0], delay=0.0)
    seeds = {t.metadata["miniwob_task"]: t.metadata["seed"] for t in suite.tasks()}
    for side in sides.values():  # warm up: browser started, pages in the page cache
        side.reset(RESET_TASKS[0], seeds[RESET_TASKS[0]])
    rng = random.Random(0)
    resets: dict[str, list[float]] = {name: [] for name in sides}
    for index in range(episodes):
        name = RESET_TASKS[index % len(RESET_TASKS)]
        order = list(sides)
        rng.shuffle(order)
        for side in order:
            started = time.perf_counter()
            sides[side].reset(name, seeds[name])
            resets[side].append(time.perf_counter() - started)
    per_action: dict[str, list[float]] = {name: [] for name in sides}
    for side in sides.values():
        side.reset(ACTION_TASK, seeds.get(ACTION_TASK, 0))
    textbox = {}
    for side_name, side in sides.items():
        if isinstance(side, Ours):
            found = re.search(r"\[(\w+)\] textbox", side.episode.observe().axtree)
            assert found, side.episode.observe().axtree
            textbox[side_name] = found.group(1)
    for _ in range(actions):
        order = list(sides)
        rng.shuffle(order)
        for side_name in order:
            side = sides[side_name]
            started = time.perf_counter()
            if isinstance(side, Ours):
                side.act(f"fill('{textbox[side_name]}', 'abc')")
            else:
                side.act()
            per_action[side_name].append(time.perf_counter() - started)
    memory = {name: side.memory() for name, side in sides.items()}
    for side in sides.values():
        side.close()
    server.shutdown()
    result: dict[str, Any] = {}
    for name in sides:
        action = stats(per_action[name])
        result[name] = {
            "reset_s": stats(resets[name]),
            "action_s": action,
            "actions_per_s": round(1 / action["median"], 2),
            "browser_pss_mb": round(memory[name][0] / 2**20, 1),
            "driver_pss_mb": round(memory[name][1] / 2**20, 1),
        }
    return result


# --- part 2: the agent ----------------------------------------------------------------


class RandomClicker:
    """A base 'model' that clicks a random element id of the page in its prompt."""

    name = "random-clicker"
    supports_tools = False
    is_base = True

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def complete(self, prompt: str, **params: Any) -> Any:
        from exapt.agents.models import ModelReply

        page = prompt.rsplit("Page:", 1)[-1]
        ids = re.findall(r"\[(\w+)\] \w+ '[^']*', clickable", page) or ["0"]
        return ModelReply(text=f" click('{self.rng.choice(ids)}')", tokens_out=4)

    def chat(self, messages: list[Any], **params: Any) -> Any:
        raise NotImplementedError


def random_floor(suite: MiniWoBSuite, names: tuple[str, ...]) -> dict[str, Any]:
    from exapt.agents import load_spec, run_task

    tasks = {t.metadata["miniwob_task"]: t for t in suite.tasks()}
    factory = suite.environment_factory("bwrap")
    spec = load_spec("web_agent")

    def one(name: str) -> tuple[str, bool, float]:
        attempt = run_task(
            tasks[name], spec=spec, model=RandomClicker(zlib.crc32(name.encode())),  # type: ignore[arg-type]
            sandbox=factory, scorer=suite.scorer(), run_id="bench-random",
        )  # fmt: skip
        found = re.search(r"raw ([+-]\d+\.\d+)", attempt.score.feedback)
        return name, attempt.score.passed, float(found.group(1)) if found else 0.0

    started = time.monotonic()
    with ThreadPoolExecutor(4) as pool:
        rows = list(pool.map(one, names))
    passed = [name for name, ok, _ in rows if ok]
    return {
        "n_tasks": len(rows),
        "n_passed": len(passed),
        "n_positive_reward": sum(raw > 0 for _, _, raw in rows),
        "pass_rate": round(len(passed) / len(rows), 3),
        "passed": passed,
        "wall_s": round(time.monotonic() - started, 1),
    }


def local_agent(names: tuple[str, ...], workers: int) -> dict[str, Any]:
    from exapt.memory.trajectories import TrajectoryStore
    from exapt.runs import Run, make_config

    config = make_config(
        suite="miniwob", model="local", task=[f"miniwob/{n}" for n in names], memory=False,
        workers=workers,
    )  # fmt: skip
    run = Run.prepare(config)
    started = time.monotonic()

    shown = [-1]

    def show(progress: Any) -> None:
        if progress.done != shown[0]:  # a line per finished task
            shown[0] = progress.done
            print(
                f"  local: {progress.done}/{progress.n_tasks} done, {progress.passed} passed, "
                f"{progress.elapsed_s:.0f} s",
                file=sys.stderr,
                flush=True,
            )

    summary = run.execute(on_progress=show)
    with TrajectoryStore() as store:
        trajectories = store.trajectories(run.run_id)
    per_task = {}
    replies = unparsed = positive = 0
    for t in trajectories:
        found = re.search(r"raw ([+-]\d+\.\d+)", t.result.feedback)
        raw = float(found.group(1)) if found else 0.0
        positive += raw > 0 and t.result.stop_reason == "episode_done"
        notes = [s for s in t.steps if s.kind == "note" and "no action" in str(s.output)]
        model_calls = [s for s in t.steps if s.kind == "model"]
        replies += len(model_calls)
        unparsed += len(notes)
        per_task[t.task_id.removeprefix("miniwob/")] = {
            "passed": t.result.passed,
            "reward": t.result.reward,
            "raw_reward": raw,
            "stop_reason": t.result.stop_reason,
            "model_calls": len(model_calls),
            "actions": sum(s.kind == "tool" for s in t.steps),
        }
    return {
        "run_id": run.run_id,
        "status": summary["status"],
        "n_tasks": summary["n_tasks"],
        "n_passed": summary["n_passed"],
        "pass_rate": round(summary["pass_rate"], 3),
        "n_positive_reward": positive,  # BrowserGym's success (raw > 0, partial credit)
        "tokens_in": summary["tokens_in"],
        "tokens_out": summary["tokens_out"],
        "wall_s": round(time.monotonic() - started, 1),
        "model_calls": replies,
        "replies_without_an_action": unparsed,
        "per_task": per_task,
        "error": summary.get("error"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=20, help="resets per side")
    parser.add_argument("--actions", type=int, default=20, help="actions per side")
    parser.add_argument("--workers", type=int, default=4, help="parallel attempts (agent)")
    parser.add_argument("--skip-agent", action="store_true", help="part 1 only")
    args = parser.parse_args()
    suite = MiniWoBSuite()
    machine_before = machine_info()
    from exapt.sandbox._chromium import unavailable_reason

    isolations = ["bwrap", "none"] if unavailable_reason(isolation="bwrap") is None else ["none"]
    env = part1(suite, args.episodes, args.actions, isolations)
    result: dict[str, Any] = {"machine": machine_before, "environment": env}
    bare = env["bare_playwright"]
    header = ("side", "reset p50", "action p50", "act/s", "browser", "driver")
    print("{:18} {:>10} {:>11} {:>7} {:>9} {:>8}".format(*header))
    for name, row in env.items():
        reset_ms = row["reset_s"]["median"] * 1000
        action_ms = row["action_s"]["median"] * 1000
        print(
            f"{name:18} {reset_ms:8.0f}ms {action_ms:9.0f}ms {row['actions_per_s']:7.2f} "
            f"{row['browser_pss_mb']:7.0f}MB {row['driver_pss_mb']:6.0f}MB"
        )
    main_side = f"exapt_{isolations[0]}"
    result["ratios"] = {
        "reset_vs_bare": round(env[main_side]["reset_s"]["median"] / bare["reset_s"]["median"], 2),
        "action_vs_bare_no_delay": round(
            env["exapt_no_delay"]["action_s"]["median"] / bare["action_s"]["median"], 2
        ),
        "memory_vs_bare": round(
            env[main_side]["browser_pss_mb"] / max(bare["browser_pss_mb"], 1), 2
        ),
    }
    print("ratios:", result["ratios"])
    if not args.skip_agent:
        result["random_clicker"] = random_floor(suite, AGENT_TASKS)
        floor = result["random_clicker"]
        print(
            f"random clicker: {floor['n_passed']}/{len(AGENT_TASKS)} passed "
            f"({floor['n_positive_reward']} with a positive reward)"
        )
        result["local_web_agent"] = local_agent(AGENT_TASKS, args.workers)
        agent = result["local_web_agent"]
        print(
            f"local + web_agent: {agent['n_passed']}/{agent['n_tasks']} passed "
            f"({agent['pass_rate']:.0%}; {agent['n_positive_reward']} with a positive reward), "
            f"{agent['wall_s']:.0f} s, "
            f"{agent['replies_without_an_action']}/{agent['model_calls']} replies without an action"
        )
    result["machine_after"] = machine_info()
    print("saved", write_result("web", result))


if __name__ == "__main__":
    main()
