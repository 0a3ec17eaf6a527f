from __future__ import annotations

import threading

import pytest

from exapt.agents.models import (
    Model,
    ModelError,
    ModelReply,
    ScriptedModel,
    ScriptExhausted,
    ToolCall,
)


def test_replies_in_order_and_calls_recorded() -> None:
    call = ToolCall(id="c1", name="run", arguments={"cmd": "pytest"})
    model = ScriptedModel(["first", ModelReply(tool_calls=[call])])
    messages = [{"role": "user", "content": "fix the bug please"}]

    one = model.chat(messages, tools=[{"type": "function", "function": {"name": "run"}}])
    messages.append({"role": "assistant", "content": "mutated later"})
    two = model.chat(messages, temperature=0.2)

    assert one.text == "first" and one.finish_reason == "stop" and one.model == "scripted"
    assert one.tokens_in == 4 and one.tokens_out == 1
    assert two.tool_calls == [call] and two.finish_reason == "tool_calls"
    assert two.as_message()["tool_calls"][0]["function"]["name"] == "run"
    # Recorded calls are copies: what the agent changes afterwards does not rewrite history.
    assert len(model.calls[0]["messages"]) == 1
    assert model.calls[0]["tools"][0]["function"]["name"] == "run"
    assert model.calls[1]["params"] == {"temperature": 0.2}
    assert model.remaining == 0


def test_exhausted_script_raises_a_model_error() -> None:
    model = ScriptedModel(["only"])
    model.complete("a")
    with pytest.raises(ScriptExhausted, match="out of replies: call 2 but only 1"):
        model.complete("b")
    assert issubclass(ScriptExhausted, ModelError)


def test_match_mode_picks_by_substring_of_last_message() -> None:
    model = ScriptedModel({"error": "fix it", "passed": "submit"}, is_base=True)
    assert model.chat([{"role": "user", "content": "tests passed"}]).text == "submit"
    assert model.chat([{"role": "user", "content": "an error!"}]).text == "fix it"
    assert model.chat([{"role": "user", "content": "an error again"}]).text == "fix it"
    with pytest.raises(ScriptExhausted, match="no scripted reply matches"):
        model.complete("something else")
    assert model.is_base and model.supports_tools


def test_complete_cuts_at_the_first_stop_sequence() -> None:
    model = ScriptedModel(["    return a + b\n\ndef other():\n    pass"])
    reply = model.complete("def add(a, b):\n", stop=["\nclass", "\ndef"])
    assert reply.text == "    return a + b\n"
    assert model.calls[0] == {
        "kind": "complete",
        "prompt": "def add(a, b):\n",
        "stop": ["\nclass", "\ndef"],
        "params": {},
    }


def test_satisfies_the_model_protocol_and_is_thread_safe() -> None:
    model = ScriptedModel([str(i) for i in range(50)])
    assert isinstance(model, Model)
    got: list[str] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(10):
            text = model.complete("x").text
            with lock:
                got.append(text)

    threads = [threading.Thread(target=worker) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(got, key=int) == [str(i) for i in range(50)]


def test_a_single_string_is_rejected() -> None:
    with pytest.raises(TypeError):
        ScriptedModel("oops")  # type: ignore[arg-type]
