"""Untrusted pages and agents against the browser environment: no network but the task's
pages, no host files, no script from actions, no forged rewards, crashes and hangs
recovered. Each hostile case has its positive control beside it."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from exapt.agents import Budget, default_spec_for, run_task
from exapt.agents.models import ModelReply, ScriptedModel, ToolCall
from exapt.records import Task
from exapt.sandbox._chromium import unavailable_reason
from exapt.sandbox.base import SandboxError
from exapt.sandbox.browser import (
    RESULT_FILE,
    BrowserOptions,
    BrowserPool,
    StaticSite,
    check_action,
    verify_result,
)
from exapt.tools.web import parse_text_action

from .conftest import bid

HOSTILE = """<!doctype html><html><head><title>loading</title></head><body>
<button id="spin" onclick="while (true) {}">Spin</button>
<button id="pop" onclick="window.open('http://example.com/popup')">Pop</button>
<img src="http://127.0.0.1:PORT/img.png"><img src="http://example.com/img.png">
<iframe src="file:///etc/passwd"></iframe>
<script>
const results = {};
async function probe(name, url) {
  try { await fetch(url); results[name] = "reached"; } catch (e) { results[name] = "blocked"; }
}
async function go() {
  await probe("outside", "http://example.com/x");
  await probe("port", "http://127.0.0.1:PORT/fetch");
  await probe("file", "file:///etc/passwd");
  await probe("own", "/ok.txt");
  await new Promise(done => {
    try {
      const ws = new WebSocket("ws://127.0.0.1:PORT/ws");
      ws.onopen = () => { results.ws = "open"; done(); };
      ws.onerror = () => { results.ws = "error"; done(); };
    } catch (e) { results.ws = "blocked"; done(); }
    setTimeout(() => { results.ws = results.ws || "timeout"; done(); }, 3000);
  });
  document.title = "probes " + JSON.stringify(results);
  window.probesDone = true;
}
go();
</script></body></html>
"""


class Listener:
    """A real TCP server on 127.0.0.1: counts every connection anything makes to it."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.sock.settimeout(0.2)
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop = True
        self._thread.join(2)
        self.sock.close()


class PageTask:
    """A BrowserGym-style task that opens one page and never ends by itself."""

    viewport = {"width": 800, "height": 600}  # noqa: RUF012
    timeout = 5000
    locale = None
    timezone_id = None

    def __init__(self, url: str, wait_for: str | None = None) -> None:
        self.url, self.wait_for = url, wait_for

    def setup(self, page: Any) -> tuple[str, dict[str, Any]]:
        page.goto(self.url)
        if self.wait_for:
            page.wait_for_function(self.wait_for, timeout=15000)
        return "Look at the page.", {}

    def validate(self, page: Any, chat_messages: list[Any]) -> tuple[float, bool, str, dict]:
        return 0.0, False, "", {}

    def teardown(self) -> None:
        pass


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    yield server
    server.close()


@pytest.fixture
def hostile_site(tmp_path: Path, listener: Listener) -> StaticSite:
    root = tmp_path / "site"
    root.mkdir()
    (root / "hostile.html").write_text(HOSTILE.replace("PORT", str(listener.port)))
    (root / "ok.txt").write_text("fine")
    return StaticSite(root, origin="http://hostile.invalid")


ISOLATIONS = [
    pytest.param(
        "bwrap",
        marks=pytest.mark.skipif(
            unavailable_reason(isolation="bwrap") is not None,
            reason=f"no bubblewrap jail here: {unavailable_reason(isolation='bwrap')}",
        ),
    ),
    "none",
]


@pytest.fixture(scope="module", params=ISOLATIONS)
def pool(request: pytest.FixtureRequest, isolation: str) -> Iterator[BrowserPool]:
    browsers = BrowserPool(BrowserOptions(isolation=request.param, action_timeout_s=8))
    yield browsers
    browsers.close()


def test_page_reaches_nothing_but_its_own_site(pool, hostile_site, listener) -> None:
    task = PageTask(hostile_site.url("hostile.html"), wait_for="window.probesDone === true")
    with pool.open(task, hostile_site) as episode:
        page = episode.observe().axtree
        blocked = {entry["url"]: entry["reason"] for entry in episode.blocked}
    assert '"own":"reached"' in page  # the positive control: the task's own site answers
    for probe in ("outside", "port", "file"):
        assert f'"{probe}":"blocked"' in page, page
    assert '"ws":"open"' not in page, page
    assert listener.connections == 0  # nothing, not even the WebSocket, reached the port
    socket.create_connection(("127.0.0.1", listener.port)).close()  # the control: it counts
    for _ in range(50):
        if listener.connections:
            break
        threading.Event().wait(0.05)
    assert listener.connections == 1
    port = f"127.0.0.1:{listener.port}"
    assert any(port in url for url in blocked), blocked
    assert any("example.com" in url for url in blocked), blocked
    assert any(url.startswith("file:") for url in blocked), blocked  # logged, not served


def test_agent_cannot_navigate_out(pool, hostile_site, listener) -> None:
    task = PageTask(hostile_site.url("ok.txt"))
    with pool.open(task, hostile_site) as episode:
        for action in (
            f"goto('http://127.0.0.1:{listener.port}/')",
            "goto('http://example.com/')",
        ):
            episode.reset()
            observation = episode.act(action)
            assert "ERR_BLOCKED_BY_CLIENT" in observation.last_action_error, observation
            assert episode.done and episode.result()["stop_reason"] == "left_task_page"
        episode.reset()
        refused = episode.act("goto('file:///etc/passwd')")
        assert "only absolute http(s) URLs" in refused.last_action_error
        assert not episode.done  # refused before anything ran
        reasons = [entry["reason"] for entry in episode.blocked]
    assert listener.connections == 0
    assert any(r.startswith("action refused: goto") for r in reasons)


def test_popups_are_closed_and_logged(pool, hostile_site) -> None:
    with pool.open(PageTask(hostile_site.url("hostile.html")), hostile_site) as episode:
        episode.act(f"click('{bid(episode.observe().axtree, 'button', 'Pop')}')")
        assert not episode.done
        assert any(e["reason"] == "new window closed" for e in episode.blocked)


def test_a_hung_page_is_killed_and_the_next_episode_works(isolation, hostile_site) -> None:
    pool = BrowserPool(BrowserOptions(isolation=isolation, action_timeout_s=4))
    try:
        with pool.open(PageTask(hostile_site.url("hostile.html")), hostile_site) as episode:
            spin = bid(episode.observe().axtree, "button", "Spin")
            observation = episode.act(f"click('{spin}')")  # an infinite loop in the page
            assert observation.done and observation.end_reason == "browser_crashed"
            assert "did not answer within 4 s" in episode.result()["error"]
        with pool.open(PageTask(hostile_site.url("ok.txt")), hostile_site) as episode:
            assert not episode.done and "fine" in episode.observe().axtree
            assert episode.worker.launches == 2
    finally:
        pool.close()


@pytest.mark.parametrize(
    "action",
    [
        "goto('javascript:WOB_RAW_REWARD_GLOBAL=1;WOB_REWARD_GLOBAL=1;WOB_DONE_GLOBAL=true')",
        "goto(' JaVaScRiPt:WOB_DONE_GLOBAL=true')",
        "goto('java\\tscript:WOB_DONE_GLOBAL=true')",
        "goto(url='javascript:core.endEpisode(1)')",
        "goto('data:text/html,<script>opener.WOB_DONE_GLOBAL=true</script>')",
        "goto('blob:http://miniwob.invalid/x')",
        "goto('/miniwob/click-test.html')",
    ],
)
def test_agent_cannot_run_script_in_the_page(action: str) -> None:
    with pytest.raises(Exception, match=r"goto: .*(javascript|only absolute http)"):
        check_action(action)


@pytest.mark.parametrize(
    "action",
    [
        "click('13'); __import__('os').system('touch /tmp/exapt-pwned')",
        "__import__('os').system('touch /tmp/exapt-pwned')",
        "page.evaluate('WOB_DONE_GLOBAL=true')",
        "click(__import__('os'))",
        "upload_file('13', '/etc/passwd')",
        "new_tab()",
        "click('1') click('2')",
    ],
)
def test_only_one_literal_action_of_the_action_set_runs(action: str) -> None:
    with pytest.raises(Exception) as caught:
        check_action(action)
    assert type(caught.value).__name__ == "ActionRefused"
    assert not Path("/tmp/exapt-pwned").exists()


def test_javascript_attempts_leave_the_reward_alone(tasks, factory, suite) -> None:
    """Positive control first (a real click scores), then an agent that only tries to
    write the reward globals: refused, the episode stays unfinished, reward 0."""
    task = tasks["click-test"]
    script = [
        "goto('javascript:WOB_RAW_REWARD_GLOBAL=1;WOB_REWARD_GLOBAL=1;WOB_DONE_GLOBAL=true')",
        "goto('javascript:core.endEpisode(1.0, false, \"forged\")')",
    ]
    replies = [
        ModelReply(tool_calls=[ToolCall(id=str(i), name="goto", arguments={"url": a[6:-2]})])
        for i, a in enumerate(script)
    ]
    model = ScriptedModel(replies)
    attempt = run_task(
        task, spec=default_spec_for(model, task), model=model, sandbox=factory,
        scorer=suite.scorer(), run_id="t", budget=Budget(max_steps=2),
    )  # fmt: skip
    assert not attempt.score.passed and attempt.score.reward == 0
    outputs = [s.output for s in attempt.trajectory.steps if s.kind == "tool"]
    assert all("javascript: URLs are refused" in out for out in outputs), outputs
    result = verify_result(attempt.workspace[RESULT_FILE])
    assert result["done"] is False and result["info"]["RAW_REWARD_GLOBAL"] == 0
    assert [b["reason"].split(":")[0] for b in result["blocked"]] == ["action refused"] * 2


def test_text_actions_take_only_the_first_call() -> None:
    name, arguments = parse_text_action(
        "Sure! click('13') and then __import__('os').system('touch /tmp/exapt-pwned')"
    )
    assert (name, arguments) == ("click", {"bid": "13"})
    assert parse_text_action("fill('7', value='a \"b\"')") == (
        "fill",
        {"bid": "7", "value": 'a "b"'},
    )


def test_forged_or_edited_results_score_nothing(tasks, factory, suite) -> None:
    task = tasks["click-test"]
    with factory(task.files) as episode:
        click = f"click('{bid(episode.observe().axtree, 'button', 'Click Me!')}')"
        episode.act(click)
        snapshot = episode.snapshot()
        with pytest.raises(SandboxError, match="read-only"):
            episode.write(RESULT_FILE, "{}")
        assert episode.exec("cat /etc/passwd").exit_code == 126
    assert suite.scorer().score(task, snapshot, factory).passed  # the genuine result
    wrapped = json.loads(snapshot[RESULT_FILE])
    wrapped["result"]["info"]["RAW_REWARD_GLOBAL"] = 1  # an edit of a signed result ...
    wrapped["result"]["steps"] = 0
    forged = {**snapshot, RESULT_FILE: json.dumps(wrapped).encode()}
    score = suite.scorer().score(task, forged, factory)
    assert not score.passed and score.reward == 0 and "not written by" in str(score.error)
    unsigned = {RESULT_FILE: json.dumps({"result": wrapped["result"], "signature": ""}).encode()}
    assert not suite.scorer().score(task, unsigned, factory).passed
    assert suite.scorer().score(task, {}, factory).error  # no result at all


def test_killing_the_browser_mid_episode_is_recovered(tasks, factory, suite) -> None:
    task = tasks["click-test"]
    opened: list[Any] = []

    def recording(files: dict[str, str | bytes]) -> Any:
        opened.append(factory(files))
        return opened[-1]

    class KillsTheBrowser(ScriptedModel):
        def chat(self, messages: list[Any], **kwargs: Any) -> ModelReply:
            opened[-1].worker.kill()  # the browser dies while the agent thinks
            return super().chat(messages, **kwargs)

    with factory(task.files) as probe:
        target = bid(probe.observe().axtree, "button", "Click Me!")
    click = ModelReply(tool_calls=[ToolCall(id="1", name="click", arguments={"bid": target})])
    model = KillsTheBrowser([click])
    attempt = run_task(
        task, spec=default_spec_for(model, task), model=model, sandbox=recording,
        scorer=suite.scorer(), run_id="t", budget=Budget(max_steps=1),
    )  # fmt: skip
    assert attempt.trajectory.result.stop_reason == "browser_crashed"
    assert not attempt.score.passed and attempt.score.reward == 0
    assert "browser" in str(attempt.score.error)
    launches = opened[-1].worker.launches
    model = ScriptedModel([click])  # the next episode, same worker, a new browser
    again = run_task(
        task, spec=default_spec_for(model, task), model=model, sandbox=recording,
        scorer=suite.scorer(), run_id="t", budget=Budget(max_steps=1),
    )  # fmt: skip
    assert again.score.passed, again.score
    assert opened[-1].worker.launches == launches + 1


def test_reloading_the_task_page_ends_the_episode(tasks, factory) -> None:
    task = tasks["click-test"]
    with factory(task.files) as episode:
        url = episode.observe().url
        target = bid(episode.observe().axtree, "button", "Click Me!")
        episode.act(f"goto('{url}')")  # a fresh, unseeded episode would be a reset
        assert episode.done and episode.result()["stop_reason"] == "left_task_page"
        assert episode.act(f"click('{target}')").last_action_error == "the episode is over"
        assert verify_result(episode.snapshot()[RESULT_FILE])["reward"] == 0


def test_site_serves_only_its_folder(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "page.html").write_text("<p>hi</p>")
    (tmp_path / "secret.txt").write_text("secret")
    (root / "link.txt").symlink_to(tmp_path / "secret.txt")
    site = StaticSite(root)
    ok = site.lookup(site.url("sub/page.html"))
    assert ok is not None and ok.status == 200 and ok.body == b"<p>hi</p>"
    assert ok.content_type.startswith("text/html")
    for path in ("../secret.txt", "sub/../../secret.txt", "%2e%2e/secret.txt", "link.txt",
                 "sub", "", "sub/%2e%2e%2f..%2fsecret.txt", "..%5csecret.txt"):  # fmt: skip
        answer = site.lookup(f"{site.origin}/{path}")
        assert answer is not None and answer.status == 404, path
    assert site.lookup("http://other.invalid/sub/page.html") is None
    assert site.lookup(site.url("sub/page.html"), "POST").status == 405  # type: ignore[union-attr]


def test_web_tool_names_are_the_environment_action_set() -> None:
    from exapt.sandbox.browser import action_names
    from exapt.tools import get_tool
    from exapt.tools.web_names import WEB_ACTIONS

    assert list(WEB_ACTIONS) == action_names()
    click = get_tool("click")
    assert click.name == "click" and "bid" in click.parameters["properties"]


def test_web_tools_refuse_a_non_browser_sandbox(sandbox_backend: str) -> None:
    from exapt.sandbox import open_sandbox
    from exapt.tools import ToolContext, ToolError, get_tool

    with open_sandbox(sandbox_backend) as box, pytest.raises(ToolError, match="browser"):
        get_tool("click").run(ToolContext(sandbox=box), bid="1")


_ = Task, Callable  # typing helpers used in annotations above
