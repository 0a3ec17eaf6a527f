"""A scripted agent solves MiniWoB++ tasks through the real browser; wrong actions score 0.

The scripted model's replies are written after looking at the same episode (same task,
same seed, so the same page and ids): what a perfect agent would do, and what a wrong one.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from exapt.agents import Budget, default_spec_for, run_task
from exapt.agents.models import ModelReply, ScriptedModel, ToolCall
from exapt.records import Task
from exapt.sandbox.browser import RESULT_FILE, verify_result

from .conftest import bid, bids


def call(name: str, **arguments: Any) -> ModelReply:
    return ModelReply(tool_calls=[ToolCall(id=f"c-{name}", name=name, arguments=arguments)])


def first_page(factory: Callable[..., Any], task: Task) -> tuple[str, str]:
    """(goal, accessibility tree) of the task's episode, as the agent will see it."""
    with factory(task.files) as episode:
        observation = episode.observe()
        return observation.goal, observation.axtree


def quoted(goal: str) -> str:
    found = re.search(r'"([^"]+)"', goal)
    assert found, goal
    return found.group(1)


def attempt(task: Task, replies: list[Any], factory: Callable[..., Any], suite: Any, **kw: Any):
    """One attempt of the default web agent; at most as many model calls as ``replies``."""
    model = ScriptedModel(replies, **kw)
    spec = default_spec_for(model, task)
    assert spec.name == "web_agent"
    return run_task(
        task,
        spec=spec,
        model=model,
        sandbox=factory,
        scorer=suite.scorer(),
        run_id="t",
        budget=Budget(max_steps=len(replies)),
    )


def test_suite_lists_the_pages_with_seeds_and_time_limits(tasks: dict[str, Task]) -> None:
    assert len(tasks) >= 120 and {"click-test", "click-button", "enter-text"} <= set(tasks)
    task = tasks["click-test"]
    assert task.suite == "miniwob" and task.language == "web"
    assert task.metadata["time_limit_s"] > 0 and isinstance(task.metadata["seed"], int)
    assert "episode.json" in task.files and "click-test" in task.instruction


def test_scripted_agent_solves_click_test(tasks, factory, suite) -> None:
    task = tasks["click-test"]
    _, page = first_page(factory, task)
    result = attempt(task, [call("click", bid=bid(page, "button", "Click Me!"))], factory, suite)
    assert result.score.passed and result.score.reward > 0, result.score
    assert result.trajectory.result.stop_reason == "episode_done"
    tool_steps = [s for s in result.trajectory.steps if s.kind == "tool"]
    assert len(tool_steps) == 1 and "Goal: Click the button." in tool_steps[0].output


def test_scripted_agent_solves_click_button(tasks, factory, suite) -> None:
    task = tasks["click-button"]
    goal, page = first_page(factory, task)
    target = bids(page, "button")[quoted(goal)]
    result = attempt(task, [call("click", bid=target)], factory, suite)
    assert result.score.passed and result.score.reward > 0, result.score


def test_scripted_agent_solves_enter_text(tasks, factory, suite) -> None:
    task = tasks["enter-text"]
    goal, page = first_page(factory, task)
    replies = [
        call("fill", bid=bid(page, "textbox", ""), value=quoted(goal)),
        call("click", bid=bid(page, "button", "Submit")),
    ]
    result = attempt(task, replies, factory, suite)
    assert result.score.passed and result.score.reward > 0, result.score
    assert "raw +1.00" in result.score.feedback


def test_wrong_action_gets_no_reward(tasks, factory, suite) -> None:
    task = tasks["click-button"]
    goal, page = first_page(factory, task)
    wrong = next(b for name, b in bids(page, "button").items() if name != quoted(goal))
    result = attempt(task, [call("click", bid=wrong)], factory, suite)
    assert not result.score.passed and result.score.reward <= 0
    assert "raw -1.00" in result.score.feedback  # MiniWoB's own verdict on a wrong click
    assert verify_result(result.workspace[RESULT_FILE])["info"]["RAW_REWARD_GLOBAL"] == -1


def test_wrong_text_in_enter_text_gets_no_reward(tasks, factory, suite) -> None:
    task = tasks["enter-text"]
    _, page = first_page(factory, task)
    replies = [
        call("fill", bid=bid(page, "textbox", ""), value="not the word"),
        call("click", bid=bid(page, "button", "Submit")),
    ]
    result = attempt(task, replies, factory, suite)
    assert not result.score.passed and result.score.reward == 0


def test_base_model_writes_text_actions(tasks, factory, suite) -> None:
    """The completion mode (for `local`): a reply line with prose and one action."""
    task = tasks["click-test"]
    _, page = first_page(factory, task)
    target = bid(page, "button", "Click Me!")
    model_kw = {"supports_tools": False, "is_base": True}
    result = attempt(task, [f" I will click it: click('{target}')"], factory, suite, **model_kw)
    assert result.score.passed, result.score
    prompt = result.trajectory.steps[0].input["prompt"]
    assert prompt.rstrip().endswith("Action:") and "Click Me!" in prompt


def test_chat_model_without_tools_writes_text_actions(tasks, factory, suite) -> None:
    task = tasks["click-test"]
    _, page = first_page(factory, task)
    target = bid(page, "button", "Click Me!")
    replies = ["Let me look.", f"The button is [{target}].\nclick('{target}')"]
    result = attempt(task, replies, factory, suite, supports_tools=False)
    assert result.score.passed, result.score
    notes = [s.output for s in result.trajectory.steps if s.kind == "note"]
    assert any("no action" in str(n) for n in notes)  # the first reply had none: told so


def test_invalid_actions_are_observations_not_exceptions(tasks, factory, suite) -> None:
    task = tasks["click-test"]
    _, page = first_page(factory, task)
    replies = [
        call("click", bid="no-such-id"),
        call("click", bid="1", nonsense=1),
        call("fly_away"),
        call("click", bid=bid(page, "button", "Click Me!")),
    ]
    result = attempt(task, replies, factory, suite)
    assert result.score.passed
    outputs = [s.output for s in result.trajectory.steps if s.kind == "tool"]
    assert "Could not find element" in outputs[0]
    assert outputs[1].startswith("error:") and "nonsense" in outputs[1]
    assert outputs[2].startswith("error: unknown tool 'fly_away'")


@pytest.mark.parametrize("name", ["click-test", "enter-text"])
def test_unfinished_episode_scores_zero(name, tasks, factory, suite) -> None:
    task = tasks[name]
    result = attempt(task, [call("noop", wait_ms=10)] * 2, factory, suite)
    assert not result.score.passed and result.score.reward == 0
    assert result.trajectory.result.stop_reason == "max_steps"
    assert "not finished" in result.score.feedback


def test_timed_episodes_run_on_the_task_own_clock(isolation: str) -> None:
    """``miniwob:timed``: the page's own limit; waiting it out is MiniWoB's -1 (timed out)."""
    import time

    from exapt.tasks.miniwob import MiniWoBOptions, MiniWoBSuite

    suite = MiniWoBSuite(MiniWoBOptions.parse("timed,seed=1"))
    task = next(t for t in suite.tasks() if t.id == "miniwob/click-test")
    limit = task.metadata["time_limit_s"]
    assert limit <= 20
    assert f'"episode_max_time_ms": {int(limit * 1000)}' in task.files["episode.json"]
    factory = suite.environment_factory("local" if isolation == "none" else "bwrap")
    with factory(task.files) as episode:
        time.sleep(limit + 0.5)
        snapshot = episode.snapshot()
    score = suite.scorer().score(task, snapshot, factory)
    assert not score.passed and score.reward == 0
    assert "raw -1.00" in score.feedback and "timed out" in score.feedback


def test_suite_options_are_checked() -> None:
    from exapt.errors import ConfigError
    from exapt.tasks import load_suite

    assert load_suite("miniwob:seed=3").options.seed == 3  # type: ignore[attr-defined]
    assert load_suite("miniwob:pass=positive").options.success == "positive"  # type: ignore[attr-defined]
    for bad in ("miniwob:seed=x", "miniwob:fast", "miniwob:timed=1", "miniwob:pass=most"):
        with pytest.raises(ConfigError, match="bad miniwob option"):
            load_suite(bad)


def test_tasks_flag_takes_short_names() -> None:
    from exapt.commands.run import task_ids

    assert task_ids("miniwob:timed", "click-test, miniwob/enter-text") == [
        "miniwob/click-test",
        "miniwob/enter-text",
    ]
    assert task_ids("humaneval", "0,1") == ["humaneval/0", "humaneval/1"]
    assert task_ids("jsonl:x.jsonl", "demo/t0") == ["demo/t0"]  # a user's ids as written
    assert task_ids("miniwob", None) == []


def test_screenshots_are_attachments_when_enabled(tmp_path, isolation: str) -> None:
    from exapt.sandbox.browser import BrowserOptions, BrowserPool, StaticSite
    from exapt.tasks.miniwob import build_task, html_dir

    site = StaticSite(html_dir())
    pool = BrowserPool(BrowserOptions(isolation=isolation, screenshots_dir=str(tmp_path)))
    try:
        from exapt.tasks.miniwob import MiniWoBSuite

        task = next(t for t in MiniWoBSuite().tasks() if t.id == "miniwob/click-test")
        with pool.open(build_task(dict(task.files), site.url("miniwob/")), site) as episode:
            shot = episode.observe().screenshot
            assert shot and Path(shot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            after = episode.act(f"click('{bid(episode.observe().axtree, 'button', 'Click Me!')}')")
            assert (
                after.screenshot and after.screenshot != shot and Path(after.screenshot).is_file()
            )
    finally:
        pool.close()
    from exapt.tools.web import render_observation

    assert f"[screenshot: {after.screenshot}]" in render_observation(after)


def test_partial_credit_is_a_pass_only_with_pass_positive(tasks, factory, suite) -> None:
    """click-checkboxes gives partial credit: submitting with nothing ticked scores > 0."""
    from exapt.tasks.miniwob import MiniWoBScorer

    task = tasks["click-checkboxes"]
    _, page = first_page(factory, task)
    result = attempt(task, [call("click", bid=bid(page, "button", "Submit"))], factory, suite)
    raw = verify_result(result.workspace[RESULT_FILE])["info"]["RAW_REWARD_GLOBAL"]
    assert 0 < raw < 1, raw  # MiniWoB's partial credit for a wrong answer
    assert not result.score.passed and result.score.reward == pytest.approx(raw)
    positive = MiniWoBScorer(success="positive").score(task, result.workspace, factory)
    assert positive.passed  # BrowserGym's success counts it
